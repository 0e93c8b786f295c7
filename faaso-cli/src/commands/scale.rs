//! `faaso scale`: print or set a funko's number of instances.

use clap::Args;

use super::{Global, Target, remote_reporter, reporter};

/// Print a funko's scale, or set it
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The funko
    #[arg(add = clap_complete::engine::ArgValueCandidates::new(super::complete::funkos))]
    name: String,
    /// The number of instances to run (0 stops the funko)
    count: Option<u32>,
    /// How long a new instance may take to answer GET /ping, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
}

impl ScaleArgs {
    pub async fn run(self, global: &Global) -> anyhow::Result<()> {
        let ui = global.ui();
        faaso::conventions::validate_name(&self.name)?;
        let target = super::target(global, &ui).await?;
        match (self.count, target) {
            (Some(count), Target::Local(mut lifecycle)) => {
                lifecycle.ready_timeout = std::time::Duration::from_secs(self.timeout);
                if count == 0 && !lifecycle.funko_exists(&self.name).await? {
                    anyhow::bail!(
                        "funko {} does not exist (no image, no containers)",
                        self.name
                    );
                }
                lifecycle
                    .scale(&self.name, count, &mut reporter(ui))
                    .await?;
                println!("{}: scale {count}", self.name);
            }
            (Some(count), Target::Remote(remote)) => {
                remote
                    .scale(&self.name, count, self.timeout, &mut remote_reporter(ui))
                    .await?;
                println!("{}: scale {count}", self.name);
            }
            (None, Target::Local(lifecycle)) => {
                let (saved, running) = lifecycle.current_scale(&self.name).await?;
                print_scale(&self.name, saved, running);
            }
            (None, Target::Remote(remote)) => {
                let status = remote.status(std::slice::from_ref(&self.name)).await?;
                let (saved, running) = status.first().map_or((None, 0), |s| (s.scale, s.running));
                print_scale(&self.name, saved, running);
            }
        }
        Ok(())
    }
}

fn print_scale(name: &str, saved: Option<u32>, running: usize) {
    match saved {
        Some(scale) => println!("{name}: scale {scale}, {running} running"),
        None => println!("{name}: no saved scale, {running} running"),
    }
}
