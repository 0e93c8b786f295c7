//! `faaso export`: the build context of a funko (runtime merged in) as a plain folder.

use std::path::PathBuf;

use clap::Args;

use super::Global;

/// Write a funko's complete build context (runtime merged in) to a new folder
#[derive(Debug, Args)]
#[command(after_help = "The result builds with plain Docker: docker build -t faaso-<name> <dest>")]
pub struct ExportArgs {
    /// The funko folder
    folder: PathBuf,
    /// The folder to create (must not exist)
    dest: PathBuf,
}

impl ExportArgs {
    pub fn run(self, global: &Global) -> anyhow::Result<()> {
        let (spec, context) = faaso::build::builder::prepare(&self.folder, None)?;
        context.write_to(&self.dest)?;
        global.ui().note(format!(
            "exported {} to {}; build it with: docker build -t faaso-{} {}",
            spec.name,
            self.dest.display(),
            spec.name,
            self.dest.display()
        ));
        Ok(())
    }
}
