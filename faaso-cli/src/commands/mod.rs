//! The command-line interface: global flags, the subcommand enum and dispatch. Each subcommand
//! lives in its own file as an `Args` struct with `run`, a thin wrapper over library code.

use clap::{Args, Parser, Subcommand};

mod version;

/// FaaSO: build functions into Docker images, run them, and route to them through the gateway.
#[derive(Debug, Parser)]
#[command(name = "faaso", version = faaso::VERSION, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts.
#[derive(Debug, Args)]
pub struct Global {
    /// Gateway to act on (for example http://server:8888); default: the saved login, else local
    #[arg(long, global = true, env = "FAASO_SERVER")]
    pub server: Option<String>,
    /// Act on the local Docker engine even when a server is configured
    #[arg(long, global = true, conflicts_with = "server")]
    pub local: bool,
    /// Show more detail (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print only errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Version(version::VersionArgs),
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Version(args) => args.run(&self.global).await,
        }
    }
}
