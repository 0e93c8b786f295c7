//! `faaso up`: make sure a funko has at least N instances running.

use clap::Args;

use super::Global;

/// Start a funko: ensure at least N instances run (default 1, or the saved scale)
#[derive(Debug, Args)]
pub struct UpArgs {
    /// The funko
    #[arg(add = clap_complete::engine::ArgValueCandidates::new(super::complete::funkos))]
    name: String,
    /// Instances to run at least
    #[arg(long, value_name = "N")]
    scale: Option<u32>,
    /// How long a new instance may take to answer GET /ping, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
}

impl UpArgs {
    pub async fn run(self, global: &Global) -> anyhow::Result<()> {
        let ui = global.ui();
        faaso::conventions::validate_name(&self.name)?;
        let mut target = super::target(global, &ui).await?;
        let scale = target.up(&self.name, self.scale, self.timeout, ui).await?;
        if matches!(target, super::Target::Local(_)) {
            super::warn_without_local_gateway(&ui).await;
        }
        println!(
            "{}: up, {scale} instance{}",
            self.name,
            if scale == 1 { "" } else { "s" }
        );
        Ok(())
    }
}
