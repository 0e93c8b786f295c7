//! `faaso version`: the client's version, and the server's when one is configured.

use clap::Args;

use super::Global;

/// Print the client version (and the gateway's, when one is configured)
#[derive(Debug, Args)]
pub struct VersionArgs {}

impl VersionArgs {
    pub async fn run(self, global: &Global) -> anyhow::Result<()> {
        println!("faaso {}", faaso::VERSION);
        if let Some(remote) = super::remote(global, &global.ui()).await? {
            println!("server {} {}", remote.server, remote.version().await?);
        }
        Ok(())
    }
}
