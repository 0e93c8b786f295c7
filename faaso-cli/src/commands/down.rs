//! `faaso down`: stop all instances of a funko (scale 0).

use clap::Args;

use super::Global;

/// Stop a funko: scale it to 0 instances
#[derive(Debug, Args)]
pub struct DownArgs {
    /// The funko
    name: String,
}

impl DownArgs {
    pub async fn run(self, _global: &Global) -> anyhow::Result<()> {
        let _ = self.name;
        super::not_available("down")
    }
}
