//! `faaso scale`: print or set a funko's number of instances.

use clap::Args;

use super::{Global, local_lifecycle, reporter};

/// Print a funko's scale, or set it
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The funko
    name: String,
    /// The number of instances to run (0 stops the funko)
    count: Option<u32>,
}

impl ScaleArgs {
    pub async fn run(self, global: &Global) -> anyhow::Result<()> {
        let ui = global.ui();
        let lifecycle = local_lifecycle(global, &ui).await?;
        match self.count {
            Some(count) => {
                if count > 0 || lifecycle.funko_exists(&self.name).await? {
                    lifecycle
                        .scale(&self.name, count, &mut reporter(ui))
                        .await?;
                } else {
                    anyhow::bail!(
                        "funko {} does not exist (no image, no containers)",
                        self.name
                    );
                }
                println!("{}: scale {count}", self.name);
            }
            None => {
                let (saved, running) = lifecycle.current_scale(&self.name).await?;
                match saved {
                    Some(scale) => println!("{}: scale {scale}, {running} running", self.name),
                    None => println!("{}: no saved scale, {running} running", self.name),
                }
            }
        }
        Ok(())
    }
}
