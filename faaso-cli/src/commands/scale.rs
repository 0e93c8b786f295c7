//! `faaso scale`: print or set a funko's number of instances.

use clap::Args;

use super::Global;

/// Print a funko's scale, or set it
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The funko
    name: String,
    /// The number of instances to run
    count: Option<u32>,
}

impl ScaleArgs {
    pub async fn run(self, _global: &Global) -> anyhow::Result<()> {
        let _ = (self.name, self.count);
        super::not_available("scale")
    }
}
