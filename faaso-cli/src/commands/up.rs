//! `faaso up`: make sure a funko has at least N instances running.

use clap::Args;

use super::Global;

/// Start a funko: ensure at least N instances run (default 1, or the saved scale)
#[derive(Debug, Args)]
pub struct UpArgs {
    /// The funko
    name: String,
    /// Instances to run at least
    #[arg(long)]
    scale: Option<u32>,
}

impl UpArgs {
    pub async fn run(self, _global: &Global) -> anyhow::Result<()> {
        let _ = (self.name, self.scale);
        super::not_available("up")
    }
}
