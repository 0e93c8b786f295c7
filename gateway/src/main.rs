//! `faaso-gateway`: parses flags, loads the configuration (defaults, `--config`, environment,
//! flags) and runs the Pingora server until SIGTERM/SIGINT (or SIGQUIT for a `-u` upgrade).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use faaso_gateway::config::{Config, Source};
use faaso_gateway::server::{self, ProcessFlags};

/// The FaaSO gateway: routes /funko/<name>/<rest> to /<rest> on that funko's Docker containers.
///
/// Runs on built-in defaults; --config, FAASO_* environment variables and flags override them.
/// The admin API (used by `faaso` in remote mode) needs a password: FAASO_PASSWORD, or
/// `password_hash` in the config (see --hash-password); without one it stays closed.
#[derive(Debug, Parser)]
#[command(name = "faaso-gateway", version)]
struct Args {
    /// YAML configuration file (see conf/faaso.yml)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Public listener [default: 0.0.0.0:8888]
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Metrics listener [default: 127.0.0.1:9091]
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
    /// Docker network of the instances [default: faaso-net]
    #[arg(long, value_name = "NAME")]
    network: Option<String>,
    /// Worker threads [default: number of CPUs]
    #[arg(long, value_name = "N")]
    threads: Option<String>,
    /// Take over the listeners of a running gateway (zero-downtime upgrade)
    #[arg(short, long)]
    upgrade: bool,
    /// Run in the background
    #[arg(short, long)]
    daemon: bool,
    /// Check the configuration and exit
    #[arg(short, long)]
    test: bool,
    /// Read a password on stdin and print the config line `password_hash: '<argon2 hash>'`, then
    /// exit
    #[arg(long)]
    hash_password: bool,
}

fn load_config(args: &Args) -> anyhow::Result<Config> {
    let env = faaso::store::dirs::process_env;
    let mut config = Config::defaults(env);
    if let Some(path) = &args.config {
        config.load(path)?;
    }
    config.apply_env(env)?;
    for (key, value) in [
        ("listen", &args.listen),
        ("metrics_listen", &args.metrics_listen),
        ("network", &args.network),
        ("threads", &args.threads),
    ] {
        if let Some(value) = value {
            config.set(key, value, &Source::Flag)?;
        }
    }
    Ok(config.validate()?)
}

/// The log filter: `RUST_LOG` when set (for debugging), else `log_level` from the config.
fn log_filter(log_level: &str) -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(log_level))
        .unwrap_or_else(|err| {
            eprintln!(
                "faaso-gateway: log_level {log_level:?} is not a valid filter ({err}); using info"
            );
            tracing_subscriber::EnvFilter::new("info")
        })
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.hash_password {
        let mut password = String::new();
        if let Err(err) = std::io::stdin().read_line(&mut password) {
            eprintln!("faaso-gateway: cannot read the password: {err}");
            return ExitCode::from(1);
        }
        return match faaso_gateway::admin::auth::hash_password(
            password.trim_end_matches(['\n', '\r']),
        ) {
            Ok(hash) => {
                // A line to paste into the config file as it is.
                println!("password_hash: '{hash}'");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("faaso-gateway: {err}");
                ExitCode::from(1)
            }
        };
    }
    let config = match load_config(&args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("faaso-gateway: {err}");
            return ExitCode::from(2);
        }
    };
    // Log lines (one per request with the access log) are written by a dedicated thread, so
    // request threads never wait on stderr. That thread buffers: under load it writes many
    // lines per system call, and it flushes whenever it has caught up. The guard lives as long
    // as the process: Pingora exits without returning here.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    std::mem::forget(guard);
    faaso_gateway::http::access_log::install(writer.clone());
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer)
        .with_env_filter(log_filter(&config.log_level))
        .init();
    // The certificate files are read once here so that a bad one stops the start (or `-t`)
    // with its name, before any listener opens.
    if let Err(err) = faaso_gateway::tls::reload::load_all(&config.tls_certs) {
        eprintln!("faaso-gateway: tls_certs: {err}");
        return ExitCode::from(2);
    }
    if args.test {
        println!("faaso-gateway: configuration OK");
        return ExitCode::SUCCESS;
    }
    let flags = ProcessFlags {
        upgrade: args.upgrade,
        daemon: args.daemon,
        test: false,
    };
    tracing::info!(listen = %config.listen, network = %config.network, "faaso-gateway starting");
    // SIGHUP reloads the certificates (crate::tls::reload, which installs its handler once the
    // server runs); until then, and without TLS, it must not end the process.
    // SAFETY: `SIG_IGN` runs no code of ours in a signal context; `signal` is safe to call
    // from any thread.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    match server::build(&config, flags) {
        Ok(server) => server.run_forever(),
        Err(err) => {
            eprintln!("faaso-gateway: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
