//! `faaso promote`: finish a canary release.

use clap::Args;
use faaso::engine::deploy::Rollout;

use super::Global;

/// Finish a canary: roll its image out to every instance, then stop the canary instances
#[derive(Debug, Args)]
#[command(
    after_help = "Each serving instance is replaced by a ready one of the canary's image before \
it stops, and the canary instances stop last, so no request fails. `faaso rollback` ends a \
canary the other way."
)]
pub struct PromoteArgs {
    /// The funko
    #[arg(add = clap_complete::engine::ArgValueCandidates::new(super::complete::funkos))]
    name: String,
    /// How long a new instance may take to answer GET /ping, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
}

impl PromoteArgs {
    pub async fn run(self, global: &Global) -> anyhow::Result<()> {
        let ui = global.ui();
        faaso::conventions::validate_name(&self.name)?;
        let mut target = super::target(global, &ui).await?;
        if let Some(summary) = target
            .roll_out(&self.name, Rollout::Promote, self.timeout, ui)
            .await?
        {
            println!("{summary}");
        }
        Ok(())
    }
}
