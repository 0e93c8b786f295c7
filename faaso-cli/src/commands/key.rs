//! `faaso key`: add, list and remove the API keys of a private funko.

use clap::{Args, Subcommand};
use faaso::store::keys::KeyStore;

use super::Global;

/// Manage the keys of private funkos (access: private in funko.yml)
#[derive(Debug, Args)]
#[command(after_help = "A private funko's requests need one of its keys, as \
`Authorization: Bearer <key>` or `X-Api-Key: <key>`; the funko never sees the key. Keys are \
stored hashed in the gateway's state folder ($FAASO_STATE_DIR/keys), so a key is shown once, \
when it is made. Changes reach every gateway worker within a second.")]
pub struct KeyArgs {
    #[command(subcommand)]
    action: KeyAction,
}

#[derive(Debug, Subcommand)]
enum KeyAction {
    /// Make a new key and print it (the only time it is shown)
    Add {
        /// The funko
        #[arg(add = clap_complete::engine::ArgValueCandidates::new(super::complete::funkos))]
        funko: String,
        /// The key's name (default key-1, key-2, ...)
        #[arg(long)]
        name: Option<String>,
    },
    /// List a funko's keys: names and creation times, never values
    List {
        /// The funko
        #[arg(add = clap_complete::engine::ArgValueCandidates::new(super::complete::funkos))]
        funko: String,
    },
    /// Remove a key: requests with it are refused from then on
    Rm {
        /// The funko
        #[arg(add = clap_complete::engine::ArgValueCandidates::new(super::complete::funkos))]
        funko: String,
        /// The key's name (from `faaso key list`)
        name: String,
    },
}

impl KeyArgs {
    pub async fn run(self, global: &Global) -> anyhow::Result<()> {
        let ui = global.ui();
        let (KeyAction::Add { funko, .. }
        | KeyAction::List { funko }
        | KeyAction::Rm { funko, .. }) = &self.action;
        faaso::conventions::validate_name(funko)?;
        match &self.action {
            KeyAction::Add {
                name: Some(name), ..
            }
            | KeyAction::Rm { name, .. } => faaso::store::keys::validate_key_name(name)?,
            _ => {}
        }
        let remote = super::remote(global, &ui).await?;
        let store = KeyStore::new(&faaso::store::dirs::state_dir(
            faaso::store::dirs::process_env,
        ));
        if remote.is_none() {
            ui.note(format!(
                "using the local key folder {}",
                store.dir().display()
            ));
        }
        match self.action {
            KeyAction::Add { funko, name } => {
                let made = match &remote {
                    Some(remote) => remote.add_key(&funko, name.as_deref()).await?,
                    None => {
                        let lifecycle = super::local_lifecycle(global, &ui).await?;
                        if !lifecycle.funko_exists(&funko).await? {
                            let unknown =
                                faaso::engine::unknown_funko(&lifecycle.docker, &funko).await;
                            anyhow::bail!("no key made: {unknown}");
                        }
                        store.add(&funko, name.as_deref())?
                    }
                };
                ui.note(format!(
                    "{funko}: key {} made; it is shown only now, so keep it somewhere safe",
                    made.name
                ));
                println!("{}", made.key);
            }
            KeyAction::List { funko } => {
                let keys = match &remote {
                    Some(remote) => remote.keys(&funko).await?,
                    None => store.list(&funko)?,
                };
                if keys.is_empty() {
                    ui.note(format!(
                        "{funko} has no keys (`faaso key add {funko}` makes one)"
                    ));
                }
                for key in keys {
                    let created = chrono::DateTime::from_timestamp(key.created as i64, 0)
                        .map_or_else(|| key.created.to_string(), |t| t.to_rfc3339());
                    println!("{}\t{created}", key.name);
                }
            }
            KeyAction::Rm { funko, name } => {
                match &remote {
                    Some(remote) => remote.delete_key(&funko, &name).await?,
                    None => store.remove(&funko, &name)?,
                }
                println!("{funko}: key {name} removed");
            }
        }
        Ok(())
    }
}
