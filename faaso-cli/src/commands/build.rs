//! `faaso build`: build funko folders into images `faaso-<name>`.

use std::path::PathBuf;

use clap::Args;
use faaso::builder::{BuildEvent, BuildRequest};

use super::Global;

/// Build funkos into Docker images (faaso-<name>:latest and faaso-<name>:<unix-seconds>)
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Funko folders to build
    #[arg(required = true)]
    folders: Vec<PathBuf>,
    /// Build every step again instead of using Docker's cache
    #[arg(long)]
    no_cache: bool,
    /// Use this funko name instead of the one in funko.yml (one folder only)
    #[arg(long)]
    name: Option<String>,
}

impl BuildArgs {
    pub async fn run(self, global: &Global) -> anyhow::Result<()> {
        let ui = global.ui();
        if self.name.is_some() && self.folders.len() > 1 {
            anyhow::bail!(
                "--name works with one folder only, got {}",
                self.folders.len()
            );
        }
        super::local_engine(global, &ui)?;
        let docker = faaso::docker::connect().await?;
        let request = BuildRequest {
            name: self.name.clone(),
            no_cache: self.no_cache,
        };
        for folder in &self.folders {
            let progress = ui.progress(&format!("building {}", folder.display()));
            let result = faaso::builder::build(&docker, folder, &request, |event| match event {
                BuildEvent::Step {
                    number,
                    total,
                    instruction,
                } => {
                    progress.step(format!("[{number}/{total}] {instruction}"));
                }
                BuildEvent::Output(line) => progress.output(&line),
            })
            .await;
            progress.finish();
            let built = result?;
            println!("built {}", built.tags.join(", "));
        }
        Ok(())
    }
}
