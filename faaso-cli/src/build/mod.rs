//! From a funko folder to an image.
//!
//! - [`runtime`]: built-in runtimes (embedded from `runtimes/`) and runtime folders.
//! - [`options`]: runtime options checked against the runtime's `options.yml`, with defaults.
//! - [`render`]: Handlebars rendering of `.hbs` files in strict mode.
//! - [`dockerignore`]: `.dockerignore` rules.
//! - [`elf`]: whether an executable runs in an image with nothing else in it.
//! - [`context`]: build contexts (runtime + funko) as a tar or an exported folder.
//! - [`scaffold`]: `faaso new`.
//! - [`builder`]: `faaso build`: context → image with both tags, progress events.

pub mod builder;
pub mod context;
pub mod dockerignore;
pub mod elf;
pub mod options;
pub mod render;
pub mod runtime;
pub mod scaffold;
