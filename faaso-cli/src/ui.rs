//! Terminal output for the commands: where messages go (results on stdout, progress and
//! notes on stderr), quiet and verbose modes, and the build progress line.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// How much to print.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    pub verbose: u8,
    pub quiet: bool,
}

impl Ui {
    /// A note on stderr (not shown with `-q`).
    pub fn note(&self, message: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("{message}");
        }
    }

    /// Detail on stderr, shown with `-v`.
    pub fn detail(&self, message: impl std::fmt::Display) {
        if self.verbose > 0 && !self.quiet {
            eprintln!("{message}");
        }
    }

    /// A progress line for long operations: a spinner on a terminal, plain lines elsewhere,
    /// nothing with `-q`.
    pub fn progress(&self, start: &str) -> Progress {
        let spinner =
            (!self.quiet && self.verbose == 0 && std::io::stderr().is_terminal()).then(|| {
                let bar = ProgressBar::new_spinner();
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.enable_steady_tick(Duration::from_millis(100));
                bar.set_message(start.to_string());
                bar
            });
        if spinner.is_none() {
            self.note(start);
        }
        Progress { ui: *self, spinner }
    }
}

/// A running progress line.
pub struct Progress {
    ui: Ui,
    spinner: Option<ProgressBar>,
}

impl Progress {
    /// The current step (replaces the spinner's message, or prints a line).
    pub fn step(&self, message: impl std::fmt::Display) {
        match &self.spinner {
            Some(bar) => bar.set_message(message.to_string()),
            None => self.ui.note(message),
        }
    }

    /// A line of output, shown with `-v`.
    pub fn output(&self, line: &str) {
        match &self.spinner {
            Some(bar) if self.ui.verbose > 0 => bar.println(line),
            _ => self.ui.detail(line),
        }
    }

    /// Ends the progress line.
    pub fn finish(self) {
        if let Some(bar) = self.spinner {
            bar.finish_and_clear();
        }
    }
}

/// Writes `bytes` to stdout; a reader that has gone (`faaso ... | head`) is not an error.
pub fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Makes a `println!` to a closed pipe end the program quietly (exit 0), as Unix tools do when
/// their reader stops reading (`faaso status | head -1`), instead of panicking.
pub fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}
