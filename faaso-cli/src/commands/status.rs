//! `faaso status`: scale, instances and images of funkos.

use clap::Args;

use super::Global;

/// Show funkos: scale, instances (health, current or out of date) and images
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Funkos to show (default: all)
    names: Vec<String>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

impl StatusArgs {
    pub async fn run(self, _global: &Global) -> anyhow::Result<()> {
        let _ = (self.names, self.json);
        super::not_available("status")
    }
}
