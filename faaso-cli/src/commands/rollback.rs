//! `faaso rollback`: put the previous release back, with the same zero-downtime rollout as
//! `deploy`.

use clap::Args;
use faaso::engine::deploy::Rollout;

use super::Global;

/// Put the release before the one that serves back on :latest and deploy it, or end a canary
#[derive(Debug, Args)]
#[command(
    after_help = "Releases are the image's <unix-seconds> tags (see `faaso status`). The rollout \
is the same as `faaso deploy`: if an instance of the earlier release does not answer GET /ping \
in time, the instances that serve keep serving and :latest stays on their image. While a \
canary runs (`faaso deploy --canary`), rollback stops the canary instances and changes nothing \
else."
)]
pub struct RollbackArgs {
    /// The funko
    #[arg(add = clap_complete::engine::ArgValueCandidates::new(super::complete::funkos))]
    name: String,
    /// How long a new instance may take to answer GET /ping, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
}

impl RollbackArgs {
    pub async fn run(self, global: &Global) -> anyhow::Result<()> {
        let ui = global.ui();
        faaso::conventions::validate_name(&self.name)?;
        let mut target = super::target(global, &ui).await?;
        if let Some(summary) = target
            .roll_out(&self.name, Rollout::Rollback, self.timeout, ui)
            .await?
        {
            println!("{summary}");
        }
        Ok(())
    }
}
