//! The command-line interface: global flags, the subcommand enum and dispatch. Each subcommand
//! lives in its own file as an `Args` struct with `run`, a thin wrapper over library code.

use clap::{Args, Parser, Subcommand};

use crate::ui::Ui;

mod build;
mod complete;
mod completions;
mod deploy;
mod down;
mod export;
mod login;
mod logs;
mod new;
mod prune;
mod purge;
mod rollback;
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
    Secret(secret::SecretArgs),
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
            Command::Secret(args) => args.run(global).await,
            Command::Purge(args) => args.run(global).await,
            Command::Prune(args) => args.run(global).await,
            Command::Login(args) => args.run(global).await,
            Command::Logout(args) => args.run(),
            Command::Version(args) => args.run(global).await,
            Command::Completions(args) => args.run(),
        }
    }
}

/// Where a command acts: this machine's Docker engine, or a gateway's admin API.
pub enum Target {
    Local(Box<faaso::engine::Lifecycle>),
    Remote(faaso::client::remote::Remote),
}

/// Chooses where to act, and says so in one line: `--local` → local; else `--server` /
/// `FAASO_SERVER`, else the server saved by `faaso login` → remote; else local. A remote's
/// version is compared with ours (a mismatch is a warning).
pub async fn target(global: &Global, ui: &Ui) -> anyhow::Result<Target> {
    if let Some(remote) = remote(global, ui).await? {
        return Ok(Target::Remote(remote));
    }
    Ok(Target::Local(Box::new(local_lifecycle(global, ui).await?)))
}

/// The remote to act on, if any (see [`target`]).
pub async fn remote(
    global: &Global,
    ui: &Ui,
) -> anyhow::Result<Option<faaso::client::remote::Remote>> {
    if global.local {
        return Ok(None);
    }
    let env = faaso::store::dirs::process_env;
    let saved = faaso::client::login::load(&faaso::client::login::config_path(env))?;
    let Some(server) = global
        .server
        .clone()
        .or_else(|| saved.as_ref().map(|s| s.server.clone()))
    else {
        return Ok(None);
    };
    let password = env("FAASO_PASSWORD").filter(|p| !p.is_empty()).or_else(|| {
        saved
            .as_ref()
            .filter(|s| {
                faaso::client::remote::normalize_server(&s.server).ok()
                    == faaso::client::remote::normalize_server(&server).ok()
            })
            .map(|s| s.password.clone())
    });
    let same_server = |s: &faaso::client::login::SavedLogin| {
        faaso::client::remote::normalize_server(&s.server).ok()
            == faaso::client::remote::normalize_server(&server).ok()
    };
    let ca_cert = global.cacert.clone().or_else(|| {
        saved
            .as_ref()
            .filter(|s| same_server(s))
            .and_then(|s| s.ca_cert.clone())
    });
    let remote = faaso::client::remote::Remote::new(&server, password, ca_cert.as_deref())?;
    ui.note(format!("using the gateway at {}", remote.server));
    let version = remote.version().await?;
    if version != faaso::VERSION {
        ui.note(format!(
            "warning: the gateway runs version {version}, this client is {}",
            faaso::VERSION
        ));
    }
    Ok(Some(remote))
}

/// The lifecycle on the local Docker engine (said in one line), with the same state and
/// secrets folders as the gateway uses by default (`FAASO_STATE_DIR`, `FAASO_SECRETS_DIR`).
pub async fn local_lifecycle(global: &Global, ui: &Ui) -> anyhow::Result<faaso::engine::Lifecycle> {
    use faaso::engine::Orchestrator;
    let orchestrator = match std::env::var("FAASO_ORCHESTRATOR") {
        _ if global.swarm => Orchestrator::Swarm,
        Ok(text) if !text.is_empty() => text
            .parse()
            .map_err(|err| anyhow::anyhow!("FAASO_ORCHESTRATOR: {err}"))?,
        _ => Orchestrator::Docker,
    };
    ui.note(match orchestrator {
        Orchestrator::Docker => "using the local Docker engine",
        Orchestrator::Swarm => "using the local Docker engine's Swarm",
    });
    let docker = faaso::engine::docker::connect().await?;
    let env = faaso::store::dirs::process_env;
    let mut lifecycle = faaso::engine::Lifecycle::new(
        docker,
        faaso::store::state::StateDir::new(faaso::store::dirs::state_dir(env)),
        faaso::store::secrets::SecretsDir::new(faaso::store::dirs::secrets_dir(env)),
    );
    lifecycle.orchestrator = orchestrator;
    lifecycle.registry = std::env::var("FAASO_REGISTRY")
        .ok()
        .map(|r| r.trim().trim_end_matches('/').to_string())
        .filter(|r| !r.is_empty());
    Ok(lifecycle)
}

/// Prints the lines of a remote operation as local mode prints its progress.
pub fn remote_reporter(ui: Ui) -> impl FnMut(faaso::client::remote::StreamLine) + Send {
    move |faaso::client::remote::StreamLine::Log { instance, line }| match instance {
        Some(instance) => println!("{instance} | {line}"),
        None => ui.note(line),
    }
}

/// Prints progress lines of an operation (hidden with `-q`).
pub fn reporter(ui: Ui) -> impl FnMut(String) + Send {
    move |line| ui.note(line)
}
