//! `faaso prune`: remove old releases of funkos.

use clap::Args;

use super::Global;

/// Remove old releases (image tags <unix-seconds>), keeping the newest, :latest and what runs
#[derive(Debug, Args)]
#[command(
    after_help = "Builds prune on their own (FAASO_KEEP_RELEASES, default 5; the gateway's \
keep_releases in remote mode). An image that an instance runs or :latest names is never removed, \
so a rollback target is removed only when more releases than --keep are newer."
)]
pub struct PruneArgs {
    /// The funkos
    #[arg(required = true, add = clap_complete::engine::ArgValueCandidates::new(super::complete::funkos))]
    names: Vec<String>,
    /// Releases to keep (the newest)
    #[arg(long, value_name = "N", default_value_t = faaso::engine::releases::DEFAULT_KEEP as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    keep: u32,
}

impl PruneArgs {
    pub async fn run(self, global: &Global) -> anyhow::Result<()> {
        let ui = global.ui();
        for name in &self.names {
            faaso::conventions::validate_name(name)?;
        }
        let target = super::target(global, &ui).await?;
        for name in &self.names {
            let removed = target.prune(name, self.keep, ui).await?;
            println!(
                "{name}: {removed} old release{} removed",
                if removed == 1 { "" } else { "s" }
            );
        }
        Ok(())
    }
}
