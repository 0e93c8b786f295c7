//! `faaso deploy`: zero-downtime rollout of a funko's newest image.

use clap::Args;
use faaso::engine::deploy::Rollout;

use super::Global;

/// Roll out the newest image: start new instances, wait until healthy, then stop old ones
#[derive(Debug, Args)]
#[command(
    after_help = "If a new instance does not answer GET /ping in time, it is removed, the \
old instances keep serving, and the command fails with the new instance's last log lines.\n\n\
With --canary 20, the newest image starts beside the serving instances and gets 20 % of the \
requests (--sticky: each client stays on one release); `faaso promote` then rolls it out to \
every instance, `faaso rollback` ends it. `faaso status` shows both releases."
)]
pub struct DeployArgs {
    /// The funko
    #[arg(add = clap_complete::engine::ArgValueCandidates::new(super::complete::funkos))]
    name: String,
    /// How long a new instance may take to answer GET /ping, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
    /// Start the newest image as a canary with this share of the requests, in percent
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u32).range(1..=99))]
    canary: Option<u32>,
    /// With --canary: send each client to one release, by a hash of its address
    #[arg(long, requires = "canary")]
    sticky: bool,
}

impl DeployArgs {
    pub async fn run(self, global: &Global) -> anyhow::Result<()> {
        let ui = global.ui();
        faaso::conventions::validate_name(&self.name)?;
        let mut target = super::target(global, &ui).await?;
        let rollout = match self.canary {
            Some(percent) => Rollout::Canary {
                percent,
                sticky: self.sticky,
            },
            None => Rollout::Deploy,
        };
        let summary = target
            .roll_out(&self.name, rollout, self.timeout, ui)
            .await?;
        if let Some(summary) = summary {
            println!("{summary}");
        }
        Ok(())
    }
}
