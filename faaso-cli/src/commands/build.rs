//! `faaso build`: build funko folders into images `faaso-<name>`, here or on a gateway.

use std::path::PathBuf;

use clap::Args;
use faaso::build::builder::{BuildEvent, BuildRequest};
use faaso::client::remote::StreamLine;

use super::{Global, Target};

/// Build funkos into Docker images (faaso-<name>:latest and faaso-<name>:<unix-seconds>)
#[derive(Debug, Args)]
#[command(
    after_help = "In remote mode the build context (runtime merged in) is uploaded to the \
gateway, which builds it on its Docker engine. After a build, releases (the <unix-seconds> \
tags) beyond the newest FAASO_KEEP_RELEASES (default 5; the gateway's keep_releases in remote \
mode) are removed, except those that run or are :latest; `faaso prune` does the same on demand."
)]
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
        let target = super::target(global, &ui).await?;
        let request = BuildRequest {
            name: self.name.clone(),
            no_cache: self.no_cache,
            keep_releases: faaso::engine::releases::keep_from_env(faaso::store::dirs::process_env),
        };
        for folder in &self.folders {
            let progress = ui.progress(&format!("building {}", folder.display()));
            let result = match &target {
                Target::Local(lifecycle) => {
                    faaso::build::builder::build(&lifecycle.docker, folder, &request, |event| {
                        match event {
                            BuildEvent::Step {
                                number,
                                total,
                                instruction,
                            } => {
                                progress.step(format!("[{number}/{total}] {instruction}"));
                            }
                            BuildEvent::Output(line) => progress.output(&line),
                        }
                    })
                    .await
                    .map(|built| built.tags)
                    .map_err(anyhow::Error::from)
                }
                Target::Remote(remote) => {
                    let (spec, context) =
                        faaso::build::builder::prepare_build(folder, request.name.as_deref())?;
                    let upload = faaso::client::remote::gzip(&context.to_tar()?)?;
                    progress.step(format!(
                        "uploading {} KiB to {}",
                        upload.len() / 1024,
                        remote.server
                    ));
                    let mut tags = Vec::new();
                    let mut on_line = |StreamLine::Log { line, .. }| {
                        if let Some(built) = line.strip_prefix("built ") {
                            tags = built.split(", ").map(str::to_string).collect();
                        } else if let Some((number, total, instruction)) =
                            faaso::build::builder::parse_step(&line)
                        {
                            // Shown as local builds show it.
                            progress.step(format!("[{number}/{total}] {instruction}"));
                            progress.output(&line);
                        } else {
                            progress.output(&line);
                        }
                    };
                    remote
                        .build(&spec.name, upload, self.no_cache, &mut on_line)
                        .await
                        .map(|()| tags)
                        .map_err(anyhow::Error::from)
                }
            };
            progress.finish();
            println!("built {}", result?.join(", "));
        }
        Ok(())
    }
}
