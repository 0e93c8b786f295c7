//! `faaso completions`: shell completion scripts.

use clap::Args;
use clap_complete::Shell;

/// Print a shell completion script (bash, zsh, fish, elvish, powershell)
#[derive(Debug, Args)]
#[command(
    after_help = "Example: faaso completions bash > /etc/bash_completion.d/faaso\n\
These scripts complete commands and flags. To complete funko names and runtimes too, have the \
shell ask faaso itself: `source <(COMPLETE=bash faaso)` in ~/.bashrc (zsh: \
`source <(COMPLETE=zsh faaso)`; fish: `COMPLETE=fish faaso | source`)."
)]
pub struct CompletionsArgs {
    /// The shell
    shell: Shell,
}

impl CompletionsArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let mut command = super::Cli::command_tree();
        let mut script = Vec::new();
        clap_complete::generate(self.shell, &mut command, "faaso", &mut script);
        crate::ui::write_stdout(&script)
    }
}
