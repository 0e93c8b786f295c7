//! `faaso purge`: remove all containers and images of funkos.

use std::io::{BufRead, IsTerminal, Write};

use clap::Args;

use super::Global;

/// Stop and remove all containers and images of funkos (secrets are kept)
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// The funkos
    #[arg(required = true, add = clap_complete::engine::ArgValueCandidates::new(super::complete::funkos))]
    names: Vec<String>,
    /// Do not ask for confirmation
    #[arg(long)]
    yes: bool,
}

impl PurgeArgs {
    pub async fn run(self, global: &Global) -> anyhow::Result<()> {
        let ui = global.ui();
        for name in &self.names {
            faaso::conventions::validate_name(name)?;
        }
        if !self.yes {
            confirm(&self.names)?;
        }
        let target = super::target(global, &ui).await?;
        for name in &self.names {
            target.purge(name, ui).await?;
            println!("{name}: purged");
        }
        Ok(())
    }
}

/// Asks on the terminal; without one, refuses (use --yes in scripts).
fn confirm(names: &[String]) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "refusing to purge {} without --yes (no terminal to ask on)",
            names.join(", ")
        );
    }
    eprint!(
        "Remove all containers and images of {}? [y/N] ",
        names.join(", ")
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        anyhow::bail!("purge cancelled")
    }
}
