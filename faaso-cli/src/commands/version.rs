//! `faaso version`: the client's version (and, once a server is configured, the server's).

use clap::Args;

use super::Global;

/// Print the client version
#[derive(Debug, Args)]
pub struct VersionArgs {}

impl VersionArgs {
    pub async fn run(self, _global: &Global) -> anyhow::Result<()> {
        println!("faaso {}", faaso::VERSION);
        Ok(())
    }
}
