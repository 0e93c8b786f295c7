//! The command-line interface: global flags, the subcommand enum and dispatch. Each subcommand
//! lives in its own file as an `Args` struct with `run`, a thin wrapper over library code.

use clap::{Args, Parser, Subcommand};

use crate::ui::Ui;
pub use target::{Target, local_lifecycle, remote, target, warn_without_local_gateway};

mod build;
mod calls;
mod complete;
mod completions;
mod deploy;
mod down;
mod export;
mod key;
mod login;
mod logs;
mod new;
mod promote;
mod prune;
mod purge;
mod rollback;
mod scale;
mod secret;
mod status;
mod target;
mod up;
mod version;

/// FaaSO: build functions ("funkos") into Docker images, run them, and route to them through
/// the gateway.
#[derive(Debug, Parser)]
#[command(name = "faaso", version = faaso::VERSION, propagate_version = true)]
#[command(after_help = "Start with `faaso new -r flask hello`, then `faaso build hello`.")]
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
    #[arg(long, global = true, env = "FAASO_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// Act on the local Docker engine even when a server is configured
    #[arg(long, global = true)]
    pub local: bool,
    /// In local mode, run funkos as services of this engine's Docker Swarm (the same as
    /// FAASO_ORCHESTRATOR=swarm); a remote gateway uses its own `orchestrator`
    #[arg(long, global = true)]
    pub swarm: bool,
    /// PEM file of a private CA that signed the gateway's HTTPS certificate; default: the one
    /// saved by `faaso login`
    #[arg(long, global = true, env = "FAASO_CA_CERT", value_name = "FILE")]
    pub cacert: Option<std::path::PathBuf>,
    /// Show more detail (build logs, error causes)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print only results and errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

impl Global {
    pub fn ui(&self) -> Ui {
        Ui {
            verbose: self.verbose,
            quiet: self.quiet,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    New(new::NewArgs),
    Build(build::BuildArgs),
    Export(export::ExportArgs),
    Up(up::UpArgs),
    Down(down::DownArgs),
    Scale(scale::ScaleArgs),
    Deploy(deploy::DeployArgs),
    Rollback(rollback::RollbackArgs),
    Status(status::StatusArgs),
    Logs(logs::LogsArgs),
    Calls(calls::CallsArgs),
    Secret(secret::SecretArgs),
    Key(key::KeyArgs),
    Promote(promote::PromoteArgs),
    Purge(purge::PurgeArgs),
    Prune(prune::PruneArgs),
    Login(login::LoginArgs),
    Logout(login::LogoutArgs),
    Version(version::VersionArgs),
    Completions(completions::CompletionsArgs),
}

impl Cli {
    /// The command tree, as completions describe it.
    pub fn command_tree() -> clap::Command {
        <Cli as clap::CommandFactory>::command()
    }

    pub async fn run(self) -> anyhow::Result<()> {
        let global = &self.global;
        match self.command {
            Command::New(args) => args.run(global),
            Command::Build(args) => args.run(global).await,
            Command::Export(args) => args.run(global),
            Command::Up(args) => args.run(global).await,
            Command::Down(args) => args.run(global).await,
            Command::Scale(args) => args.run(global).await,
            Command::Deploy(args) => args.run(global).await,
            Command::Rollback(args) => args.run(global).await,
            Command::Status(args) => args.run(global).await,
            Command::Logs(args) => args.run(global).await,
            Command::Calls(args) => args.run(global).await,
            Command::Secret(args) => args.run(global).await,
            Command::Key(args) => args.run(global).await,
            Command::Promote(args) => args.run(global).await,
            Command::Purge(args) => args.run(global).await,
            Command::Prune(args) => args.run(global).await,
            Command::Login(args) => args.run(global).await,
            Command::Logout(args) => args.run(),
            Command::Version(args) => args.run(global).await,
            Command::Completions(args) => args.run(),
        }
    }
}
