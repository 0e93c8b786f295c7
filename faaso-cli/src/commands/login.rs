//! `faaso login`: check the gateway's admin password and save it.

use clap::Args;

use super::Global;

/// Check the admin password of a gateway and save it (mode 0600, in your config folder)
#[derive(Debug, Args)]
pub struct LoginArgs {}

impl LoginArgs {
    pub async fn run(self, _global: &Global) -> anyhow::Result<()> {
        super::not_available("login")
    }
}
