//! `faaso deploy`: zero-downtime rollout of a funko's newest image.

use clap::Args;

use super::Global;

/// Roll out the newest image: start new instances, wait until healthy, then stop old ones
#[derive(Debug, Args)]
#[command(
    after_help = "If a new instance does not answer GET /ping in time, it is removed, the \
old instances keep serving, and the command fails with the new instance's last log lines."
)]
pub struct DeployArgs {
    /// The funko
    #[arg(add = clap_complete::engine::ArgValueCandidates::new(super::complete::funkos))]
    name: String,
    /// How long a new instance may take to answer GET /ping, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
}

impl DeployArgs {
    pub async fn run(self, global: &Global) -> anyhow::Result<()> {
        let ui = global.ui();
        faaso::conventions::validate_name(&self.name)?;
        let mut target = super::target(global, &ui).await?;
        if let Some(summary) = target.deploy(&self.name, self.timeout, ui).await? {
            println!("{summary}");
        }
        Ok(())
    }
}
