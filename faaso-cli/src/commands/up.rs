//! `faaso up`: make sure a funko has at least N instances running.

use clap::Args;

use super::{Global, local_lifecycle, reporter};

/// Start a funko: ensure at least N instances run (default 1, or the saved scale)
#[derive(Debug, Args)]
pub struct UpArgs {
    /// The funko
    name: String,
    /// Instances to run at least
    #[arg(long, value_name = "N")]
    scale: Option<u32>,
}

impl UpArgs {
    pub async fn run(self, global: &Global) -> anyhow::Result<()> {
        let ui = global.ui();
        let lifecycle = local_lifecycle(global, &ui).await?;
        let scale = lifecycle
            .up(&self.name, self.scale, &mut reporter(ui))
            .await?;
        println!(
            "{}: up, {scale} instance{}",
            self.name,
            if scale == 1 { "" } else { "s" }
        );
        Ok(())
    }
}
