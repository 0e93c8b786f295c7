//! `faaso secret`: add, remove and list a funko's secrets.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use faaso::store::secrets::SecretsDir;

use super::{Global, Target};

/// Manage secrets: files a funko reads at /secrets/<secret>
#[derive(Debug, Args)]
#[command(
    after_help = "Secrets live in $FAASO_SECRETS_DIR/<funko>/<secret> (folders 0700, files 0600); \
running instances see changes at once. Values are never printed."
)]
pub struct SecretArgs {
    #[command(subcommand)]
    action: SecretAction,
}

#[derive(Debug, Subcommand)]
enum SecretAction {
    /// Add or replace a secret (value from a terminal without echo, from stdin, or a file)
    Add {
        /// The funko that reads the secret
        #[arg(add = clap_complete::engine::ArgValueCandidates::new(super::complete::funkos))]
        funko: String,
        /// The secret's name: its file is /secrets/<secret> in the funko's instances
        secret: String,
        /// Read the value from this file
        #[arg(long, value_name = "FILE")]
        from_file: Option<PathBuf>,
        /// Store it even though the funko does not exist (yet)
        #[arg(long)]
        force: bool,
    },
    /// Remove a secret
    Rm {
        /// The funko
        #[arg(add = clap_complete::engine::ArgValueCandidates::new(super::complete::funkos))]
        funko: String,
        /// The secret's name
        secret: String,
    },
    /// List secret names (never values)
    List {
        /// Only this funko's secrets
        #[arg(add = clap_complete::engine::ArgValueCandidates::new(super::complete::funkos))]
        funko: Option<String>,
    },
}

impl SecretArgs {
    pub async fn run(self, global: &Global) -> anyhow::Result<()> {
        let ui = global.ui();
        // Check names before asking for a value or choosing where to act.
        match &self.action {
            SecretAction::Add { funko, secret, .. } | SecretAction::Rm { funko, secret, .. } => {
                faaso::conventions::validate_name(funko)?;
                faaso::store::secrets::validate_secret_name(secret)?;
            }
            SecretAction::List { funko: Some(funko) } => faaso::conventions::validate_name(funko)?,
            SecretAction::List { funko: None } => {}
        }
        let remote = super::remote(global, &ui).await?;
        if remote.is_none() && !global.swarm {
            ui.note("using the local secrets folder");
        }
        let secrets = SecretsDir::new(faaso::store::dirs::secrets_dir(
            faaso::store::dirs::process_env,
        ));
        // Swarm mode keeps secrets in the swarm, not in the local folder.
        let swarm =
            global.swarm || std::env::var("FAASO_ORCHESTRATOR").is_ok_and(|o| o.trim() == "swarm");
        match self.action {
            SecretAction::Add {
                funko,
                secret,
                from_file,
                force,
            } => {
                // One connection to where it acts, for the check and the write.
                let target = match remote {
                    Some(remote) => Target::Remote(remote),
                    None => Target::Local(Box::new(super::local_lifecycle(global, &ui).await?)),
                };
                if !force && !funko_exists(&funko, &target).await? {
                    anyhow::bail!(
                        "funko {funko} does not exist (no image, no containers); nothing stored \
                         (--force stores the secret for a funko you have not built yet)"
                    );
                }
                let value = read_value(&secret, from_file.as_deref())?;
                if value.is_empty() {
                    anyhow::bail!(
                        "the value of secret {secret} is empty (nothing on stdin?); nothing stored"
                    );
                }
                let bytes = value.len();
                match &target {
                    Target::Remote(remote) => remote.put_secret(&funko, &secret, value).await?,
                    Target::Local(lifecycle) => {
                        lifecycle.add_secret(&funko, &secret, &value).await?
                    }
                }
                println!("{funko}: secret {secret} set ({bytes} bytes)");
            }
            SecretAction::Rm { funko, secret } => {
                match &remote {
                    Some(remote) => remote.delete_secret(&funko, &secret).await?,
                    None if swarm => {
                        let lifecycle = super::local_lifecycle(global, &ui).await?;
                        lifecycle.remove_secret(&funko, &secret).await?
                    }
                    None => secrets.remove(&funko, &secret)?,
                }
                println!("{funko}: secret {secret} removed");
            }
            SecretAction::List { funko } => {
                let listed = match &remote {
                    Some(remote) => remote.secrets().await?,
                    None if swarm => {
                        let lifecycle = super::local_lifecycle(global, &ui).await?;
                        lifecycle.secret_names().await?
                    }
                    None => secrets.list(funko.as_deref())?,
                };
                for (owner, names) in listed {
                    if funko.as_ref().is_some_and(|f| *f != owner) {
                        continue;
                    }
                    for name in names {
                        println!("{owner}\t{name}");
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whether the funko has an image or a container, where the command acts.
async fn funko_exists(funko: &str, target: &Target) -> anyhow::Result<bool> {
    match target {
        Target::Remote(remote) => match remote.status(&[funko.to_string()]).await {
            Ok(_) => Ok(true),
            Err(faaso::client::remote::RemoteError::Status { status: 404, .. }) => Ok(false),
            Err(err) => Err(err.into()),
        },
        Target::Local(lifecycle) => Ok(lifecycle.funko_exists(funko).await?),
    }
}

/// The secret's value: from a file, from a terminal without echo, or all of stdin.
fn read_value(secret: &str, from_file: Option<&std::path::Path>) -> anyhow::Result<Vec<u8>> {
    if let Some(path) = from_file {
        return std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    if std::io::stdin().is_terminal() {
        let value = rpassword::prompt_password(format!("value of {secret}: "))?;
        return Ok(value.into_bytes());
    }
    let mut value = Vec::new();
    std::io::stdin().read_to_end(&mut value)?;
    // A trailing newline from `echo` is not part of the value.
    if value.ends_with(b"\n") {
        value.pop();
        if value.ends_with(b"\r") {
            value.pop();
        }
    }
    Ok(value)
}
