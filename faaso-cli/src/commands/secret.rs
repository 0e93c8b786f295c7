//! `faaso secret`: add, remove and list a funko's secrets.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::Global;

/// Manage secrets: files a funko reads at /secrets/<secret>
#[derive(Debug, Args)]
pub struct SecretArgs {
    #[command(subcommand)]
    action: SecretAction,
}

#[derive(Debug, Subcommand)]
enum SecretAction {
    /// Add or replace a secret (value from a terminal without echo, from stdin, or a file)
    Add {
        funko: String,
        secret: String,
        /// Read the value from this file
        #[arg(long, value_name = "FILE")]
        from_file: Option<PathBuf>,
    },
    /// Remove a secret
    Rm { funko: String, secret: String },
    /// List secret names (never values)
    List { funko: Option<String> },
}

impl SecretArgs {
    pub async fn run(self, _global: &Global) -> anyhow::Result<()> {
        let _ = self.action;
        super::not_available("secret")
    }
}
