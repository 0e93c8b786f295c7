//! `faaso scale`: print or set a funko's number of instances.

use clap::Args;

use super::Global;

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
        let mut target = super::target(global, &ui).await?;
        match self.count {
            Some(count) => {
                if count == 0 {
                    target.require_funko(&self.name).await?;
                }
                target.scale(&self.name, count, self.timeout, ui).await?;
                println!("{}: scale {count}", self.name);
            }
            None => {
                let (saved, running) = target.current_scale(&self.name).await?;
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
