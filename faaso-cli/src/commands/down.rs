//! `faaso down`: stop all instances of a funko (scale 0).

use clap::Args;

use super::{Global, Target, remote_reporter, reporter};

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
        match super::target(global, &ui).await? {
            Target::Local(lifecycle) => {
                if !lifecycle.funko_exists(&self.name).await? {
                    anyhow::bail!(
                        "funko {} does not exist (no image, no containers)",
                        self.name
                    );
                }
                lifecycle.scale(&self.name, 0, &mut reporter(ui)).await?;
            }
            Target::Remote(remote) => {
                remote
                    .scale(&self.name, 0, 60, &mut remote_reporter(ui))
                    .await?
            }
        }
        println!("{}: down", self.name);
        Ok(())
    }
}
