//! The command-line interface: global flags, the subcommand enum and dispatch. Each subcommand
//! lives in its own file as an `Args` struct with `run`, a thin wrapper over library code.

use clap::{Args, Parser, Subcommand};

use crate::ui::Ui;

mod build;
mod completions;
mod deploy;
mod down;
mod export;
mod login;
mod logs;
mod new;
mod purge;
mod scale;
mod secret;
mod status;
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
    Status(status::StatusArgs),
    Logs(logs::LogsArgs),
    Secret(secret::SecretArgs),
    Purge(purge::PurgeArgs),
    Login(login::LoginArgs),
    Version(version::VersionArgs),
    Completions(completions::CompletionsArgs),
}

impl Cli {
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
            Command::Status(args) => args.run(global).await,
            Command::Logs(args) => args.run(global).await,
            Command::Secret(args) => args.run(global).await,
            Command::Purge(args) => args.run(global).await,
            Command::Login(args) => args.run(global).await,
            Command::Version(args) => args.run(global).await,
            Command::Completions(args) => args.run(),
        }
    }
}

/// Where a command that can act locally or remotely acts, said in one line.
pub fn local_engine(global: &Global, ui: &Ui) -> anyhow::Result<()> {
    match (&global.server, global.local) {
        (Some(server), false) => anyhow::bail!(
            "remote mode ({server}) is not available yet; use --local to act on this machine's Docker engine"
        ),
        _ => {
            ui.note("using the local Docker engine");
            Ok(())
        }
    }
}

/// The answer of commands whose implementation has not landed yet.
pub fn not_available(command: &str) -> anyhow::Result<()> {
    anyhow::bail!("`faaso {command}` is not available yet in this version")
}

/// The lifecycle on the local Docker engine, with the same state and secrets folders as the
/// gateway uses by default (`FAASO_STATE_DIR`, `FAASO_SECRETS_DIR`).
pub async fn local_lifecycle(
    global: &Global,
    ui: &Ui,
) -> anyhow::Result<faaso::lifecycle::Lifecycle> {
    local_engine(global, ui)?;
    let docker = faaso::docker::connect().await?;
    let env = faaso::dirs::process_env;
    Ok(faaso::lifecycle::Lifecycle::new(
        docker,
        faaso::state::StateDir::new(faaso::dirs::state_dir(env)),
        faaso::secrets::SecretsDir::new(faaso::dirs::secrets_dir(env)),
    ))
}

/// Prints progress lines of an operation (hidden with `-q`).
pub fn reporter(ui: Ui) -> impl FnMut(String) + Send {
    move |line| ui.note(line)
}
