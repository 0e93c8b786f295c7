//! `faaso rollback`: put the previous release back, with the same zero-downtime rollout as
//! `deploy`.

use clap::Args;

use super::{Global, Target, remote_reporter, reporter};

/// Put the release before the one that serves back on :latest and deploy it
#[derive(Debug, Args)]
#[command(
    after_help = "Releases are the image's <unix-seconds> tags (see `faaso status`). The rollout \
is the same as `faaso deploy`: if an instance of the earlier release does not answer GET /ping \
in time, the instances that serve keep serving and :latest stays on their image."
)]
pub struct RollbackArgs {
    /// The funko
    #[arg(add = clap_complete::engine::ArgValueCandidates::new(super::complete::funkos))]
    name: String,
    /// How long a new instance may take to answer GET /ping, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
}

impl RollbackArgs {
    pub async fn run(self, global: &Global) -> anyhow::Result<()> {
        let ui = global.ui();
        faaso::conventions::validate_name(&self.name)?;
        match super::target(global, &ui).await? {
            Target::Local(mut lifecycle) => {
                lifecycle.ready_timeout = std::time::Duration::from_secs(self.timeout);
                let rolled = lifecycle.rollback(&self.name, &mut reporter(ui)).await?;
                println!("{}", rolled.summary(&self.name));
            }
            Target::Remote(remote) => {
                let mut summary = None;
                let mut report = remote_reporter(ui);
                let prefix = format!("{}: rolled back to ", self.name);
                let mut on_line = |line: faaso::client::remote::StreamLine| {
                    let faaso::client::remote::StreamLine::Log { line: text, .. } = &line;
                    if text.starts_with(&prefix) {
                        summary = Some(text.clone());
                    } else {
                        report(line);
                    }
                };
                remote
                    .rollback(&self.name, self.timeout, &mut on_line)
                    .await?;
                if let Some(summary) = summary {
                    println!("{summary}");
                }
            }
        }
        Ok(())
    }
}
