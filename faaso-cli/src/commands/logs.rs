//! `faaso logs`: the merged logs of a funko's instances.

use clap::Args;

use super::Global;

/// Show the logs of all instances of a funko, each line prefixed with its instance
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The funko
    #[arg(add = clap_complete::engine::ArgValueCandidates::new(super::complete::funkos))]
    name: String,
    /// Keep following (also instances started later); Ctrl-C stops
    #[arg(short, long)]
    follow: bool,
    /// Lines to show from the end of each instance's log, or `all`
    #[arg(long, value_name = "N|all", default_value = "100", value_parser = parse_tail)]
    tail: Tail,
}

/// `--tail`: a number of lines, or every line (`all`).
#[derive(Debug, Clone, Copy)]
struct Tail(Option<u32>);

fn parse_tail(text: &str) -> Result<Tail, String> {
    match text {
        "all" => Ok(Tail(None)),
        n => n
            .parse()
            .map(|n| Tail(Some(n)))
            .map_err(|_| format!("expected a number of lines or `all`, got {text:?}")),
    }
}

impl LogsArgs {
    pub async fn run(self, global: &Global) -> anyhow::Result<()> {
        let ui = global.ui();
        faaso::conventions::validate_name(&self.name)?;
        let logs = async {
            let target = super::target(global, &ui).await?;
            target.logs(&self.name, self.follow, self.tail.0, ui).await
        };
        tokio::select! {
            result = logs => result,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    }
}
