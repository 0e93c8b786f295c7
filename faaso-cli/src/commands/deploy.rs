//! `faaso deploy`: zero-downtime rollout of a funko's newest image.

use clap::Args;

use super::{Global, Target, remote_reporter, reporter};

/// Roll out the newest image: start new instances, wait until healthy, then stop old ones
#[derive(Debug, Args)]
#[command(
    after_help = "If a new instance does not answer GET /ping in time, it is removed, the \
old instances keep serving, and the command fails with the new instance's last log lines."
)]
pub struct DeployArgs {
    /// The funko
    #[arg(add = clap_complete::engine::ArgValueCandidates::new(super::complete::funkos))]
    name: String,
    /// How long a new instance may take to answer GET /ping, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
}

impl DeployArgs {
    pub async fn run(self, global: &Global) -> anyhow::Result<()> {
        let ui = global.ui();
        faaso::conventions::validate_name(&self.name)?;
        match super::target(global, &ui).await? {
            Target::Local(mut lifecycle) => {
                lifecycle.ready_timeout = std::time::Duration::from_secs(self.timeout);
                let deployed = lifecycle.deploy(&self.name, &mut reporter(ui)).await?;
                println!("{}", deployed.summary(&self.name));
            }
            Target::Remote(remote) => {
                let mut summary = None;
                let mut report = remote_reporter(ui);
                let mut on_line = |line: faaso::client::remote::StreamLine| {
                    let faaso::client::remote::StreamLine::Log { line: text, .. } = &line;
                    if text.contains(" replaced, ") {
                        summary = Some(text.clone());
                    } else {
                        report(line);
                    }
                };
                remote
                    .deploy(&self.name, self.timeout, &mut on_line)
                    .await?;
                if let Some(summary) = summary {
                    println!("{summary}");
                }
            }
        }
        Ok(())
    }
}
