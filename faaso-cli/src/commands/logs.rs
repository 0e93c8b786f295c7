//! `faaso logs`: the merged logs of a funko's instances.

use clap::Args;

use super::Global;

/// Show the logs of all instances of a funko, each line prefixed with its instance
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The funko
    name: String,
    /// Keep following (also instances started later)
    #[arg(short, long)]
    follow: bool,
    /// Lines to show from the end of each instance's log
    #[arg(long, value_name = "N")]
    tail: Option<u32>,
}

impl LogsArgs {
    pub async fn run(self, _global: &Global) -> anyhow::Result<()> {
        let _ = (self.name, self.follow, self.tail);
        super::not_available("logs")
    }
}
