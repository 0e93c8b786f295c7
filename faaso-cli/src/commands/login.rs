//! `faaso login`: check the gateway's admin password and save it.

use std::io::{IsTerminal, Read};

use clap::Args;
use faaso::client::login::{SavedLogin, config_path, save};
use faaso::client::remote::{Remote, RemoteError};

use super::Global;

/// Check the admin password of a gateway and save it (mode 0600, in your config folder)
#[derive(Debug, Args)]
#[command(
    after_help = "The server comes from --server or FAASO_SERVER (http:// is assumed \
without a scheme; for an https:// server with a private CA, add --cacert FILE). The password is \
read from the terminal without echo, or from stdin. It is saved with the server and the CA file \
in $XDG_CONFIG_HOME/faaso/config.yml (~/.config/faaso/config.yml), readable only by you."
)]
pub struct LoginArgs {
    /// (Not for login: it deals with the saved login only.) Takes the place of the global
    /// `--local`, so that the help does not offer it.
    #[arg(long, hide = true)]
    local: bool,
}

/// Forget the saved login (server, password and CA file); later commands act locally
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// See [`LoginArgs::local`].
    #[arg(long, hide = true)]
    local: bool,
}

impl LogoutArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let path = config_path(faaso::store::dirs::process_env);
        match faaso::client::login::remove(&path)? {
            Some(server) if !server.is_empty() => println!("logged out of {server}"),
            Some(_) => println!("logged out (removed {})", path.display()),
            None => println!("not logged in"),
        }
        Ok(())
    }
}

impl LoginArgs {
    pub async fn run(self, global: &Global) -> anyhow::Result<()> {
        let ui = global.ui();
        let Some(server) = &global.server else {
            anyhow::bail!("give the gateway with --server URL (or FAASO_SERVER)");
        };
        let password = if std::io::stdin().is_terminal() {
            rpassword::prompt_password(format!("admin password for {server}: "))?
        } else {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            text.trim_end_matches(['\n', '\r']).to_string()
        };
        let remote = Remote::new(server, Some(password.clone()), global.cacert.as_deref())?;
        let version = match remote.version().await {
            Ok(version) => version,
            Err(RemoteError::Unauthorized) => {
                anyhow::bail!("wrong password for {server}; nothing saved")
            }
            Err(err) => return Err(err.into()),
        };
        let path = config_path(faaso::store::dirs::process_env);
        save(
            &path,
            &SavedLogin {
                server: remote.server.clone(),
                password,
                ca_cert: global
                    .cacert
                    .as_ref()
                    .map(|path| std::path::absolute(path).unwrap_or_else(|_| path.clone())),
            },
        )?;
        if version != faaso::VERSION {
            ui.note(format!(
                "warning: the gateway runs version {version}, this client is {}",
                faaso::VERSION
            ));
        }
        println!(
            "logged in to {} (version {version}); saved in {}",
            remote.server,
            path.display()
        );
        Ok(())
    }
}
