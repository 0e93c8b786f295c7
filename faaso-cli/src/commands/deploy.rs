//! `faaso deploy`: zero-downtime rollout of a funko's newest image.

use clap::Args;

use super::{Global, local_lifecycle, reporter};

/// Roll out the newest image: start new instances, wait until healthy, then stop old ones
#[derive(Debug, Args)]
#[command(
    after_help = "If a new instance does not answer GET /ping in time, it is removed, the \
old instances keep serving, and the command fails with the new instance's last log lines."
)]
pub struct DeployArgs {
    /// The funko
    name: String,
    /// How long a new instance may take to answer GET /ping, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
}

impl DeployArgs {
    pub async fn run(self, global: &Global) -> anyhow::Result<()> {
        let ui = global.ui();
        let mut lifecycle = local_lifecycle(global, &ui).await?;
        lifecycle.ready_timeout = std::time::Duration::from_secs(self.timeout);
        let deployed = lifecycle.deploy(&self.name, &mut reporter(ui)).await?;
        println!(
            "{}: {} instance{} replaced, {} already current",
            self.name,
            deployed.replaced,
            if deployed.replaced == 1 { "" } else { "s" },
            deployed.current
        );
        Ok(())
    }
}
