//! `faaso deploy`: zero-downtime rollout of a funko's newest image.

use clap::Args;

use super::Global;

/// Roll out the newest image: start new instances, wait until healthy, then stop old ones
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The funko
    name: String,
}

impl DeployArgs {
    pub async fn run(self, _global: &Global) -> anyhow::Result<()> {
        let _ = self.name;
        super::not_available("deploy")
    }
}
