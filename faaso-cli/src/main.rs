//! The `faaso` command: parses arguments, runs the command, prints errors as one line and picks
//! the exit code (0 ok, 1 operation failed, 2 usage error).

use std::process::ExitCode;

use clap::Parser;

mod commands;
mod ui;

fn main() -> ExitCode {
    ui::quiet_on_broken_pipe();
    // `COMPLETE=<shell> faaso ...`: the shell asks for completions (funko names included).
    clap_complete::CompleteEnv::with_factory(<commands::Cli as clap::CommandFactory>::command)
        .complete();
    let cli = commands::Cli::parse();
    let verbose = cli.global.verbose;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if verbose > 0 {
                eprintln!("error: {err:?}");
            } else {
                eprintln!("error: {}", one_line(&err));
            }
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line, leaving out causes the message already contains.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}
