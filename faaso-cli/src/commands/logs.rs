//! `faaso logs`: the merged logs of a funko's instances.

use clap::Args;

use super::{Global, local_lifecycle};

/// Show the logs of all instances of a funko, each line prefixed with its instance
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The funko
    name: String,
    /// Keep following (also instances started later); Ctrl-C stops
    #[arg(short, long)]
    follow: bool,
    /// Lines to show from the end of each instance's log
    #[arg(long, value_name = "N")]
    tail: Option<u32>,
}

impl LogsArgs {
    pub async fn run(self, global: &Global) -> anyhow::Result<()> {
        let ui = global.ui();
        let lifecycle = local_lifecycle(global, &ui).await?;
        let mut print = |line: faaso::logs::LogLine| println!("{} | {}", line.instance, line.line);
        tokio::select! {
            result = lifecycle.logs(&self.name, self.follow, self.tail, &mut print) => Ok(result?),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    }
}
