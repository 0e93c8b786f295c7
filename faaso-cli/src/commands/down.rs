//! `faaso down`: stop all instances of a funko (scale 0).

use clap::Args;

use super::Global;

/// Stop a funko: scale it to 0 instances
#[derive(Debug, Args)]
pub struct DownArgs {
    /// The funko
    #[arg(add = clap_complete::engine::ArgValueCandidates::new(super::complete::funkos))]
    name: String,
}

impl DownArgs {
    pub async fn run(self, global: &Global) -> anyhow::Result<()> {
        let ui = global.ui();
        faaso::conventions::validate_name(&self.name)?;
        let mut target = super::target(global, &ui).await?;
        target.require_funko(&self.name).await?;
        target.scale(&self.name, 0, 60, ui).await?;
        println!("{}: down", self.name);
        Ok(())
    }
}
