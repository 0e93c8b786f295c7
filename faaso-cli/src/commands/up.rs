//! `faaso up`: make sure a funko has at least N instances running.

use clap::Args;

use super::{Global, Target, remote_reporter, reporter};

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
        let scale = match super::target(global, &ui).await? {
            Target::Local(mut lifecycle) => {
                lifecycle.ready_timeout = std::time::Duration::from_secs(self.timeout);
                lifecycle
                    .up(&self.name, self.scale, &mut reporter(ui))
                    .await?
            }
            Target::Remote(remote) => {
                let status = remote.status(std::slice::from_ref(&self.name)).await?;
                let (saved, running) = status
                    .first()
                    .map_or((None, 0), |s| (s.scale, s.running as u32));
                let wanted = self
                    .scale
                    .unwrap_or_else(|| saved.unwrap_or(1).max(1))
                    .max(running);
                remote
                    .scale(&self.name, wanted, self.timeout, &mut remote_reporter(ui))
                    .await?;
                wanted
            }
        };
        println!(
            "{}: up, {scale} instance{}",
            self.name,
            if scale == 1 { "" } else { "s" }
        );
        Ok(())
    }
}
