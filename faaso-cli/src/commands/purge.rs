//! `faaso purge`: remove all containers and images of funkos.

use clap::Args;

use super::Global;

/// Stop and remove all containers and images of funkos
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// The funkos
    #[arg(required = true)]
    names: Vec<String>,
    /// Do not ask for confirmation
    #[arg(long)]
    yes: bool,
}

impl PurgeArgs {
    pub async fn run(self, _global: &Global) -> anyhow::Result<()> {
        let _ = (self.names, self.yes);
        super::not_available("purge")
    }
}
