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
