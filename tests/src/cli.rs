//! Running the `faaso` binary in tests, with private state and secrets folders (the same
//! variables the gateway reads, so a test can share them with a gateway it starts).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `faaso` command with its folders.
pub struct Faaso {
    pub state_dir: PathBuf,
    pub secrets_dir: PathBuf,
    /// `XDG_CONFIG_HOME` (where `faaso login` saves).
    pub config_home: PathBuf,
    /// Extra environment, for example `FAASO_SERVER` and `FAASO_PASSWORD`.
    pub env: Vec<(String, String)>,
    /// Run as this user (with its groups) instead of the test's own, through `setpriv`.
    pub user: Option<String>,
}

impl Faaso {
    /// Folders below `dir` (`state/`, `secrets/`), as [`crate::gateway::GatewayProcess`] uses.
    pub fn in_dir(dir: &Path) -> Faaso {
        Faaso {
            state_dir: dir.join("state"),
            secrets_dir: dir.join("secrets"),
            config_home: dir.join("config"),
            env: Vec::new(),
            user: None,
        }
    }

    pub fn command(&self) -> Command {
        let command = match &self.user {
            None => Command::new(crate::bins::path("faaso")),
            Some(user) => {
                let mut command = Command::new("setpriv");
                command
                    .args(["--reuid", user, "--regid", user, "--init-groups", "--"])
                    .arg(crate::bins::path("faaso"));
                command
            }
        };
        self.isolated(command, std::env::vars_os().map(|(key, _)| key))
    }

    /// `command` made independent of the machine it runs on, whose environment has the
    /// variables `machine`: no FAASO_* variable of the machine's reaches it, and it has a config
    /// folder (and home) of its own, so a saved `faaso login` of the machine is never used.
    fn isolated(
        &self,
        mut command: Command,
        machine: impl Iterator<Item = std::ffi::OsString>,
    ) -> Command {
        for key in machine {
            if key.to_string_lossy().starts_with("FAASO_") {
                command.env_remove(key);
            }
        }
        command
            .env("FAASO_STATE_DIR", &self.state_dir)
            .env("FAASO_SECRETS_DIR", &self.secrets_dir)
            .env("XDG_CONFIG_HOME", &self.config_home)
            .env("HOME", &self.config_home)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        command
    }

    /// Runs `faaso <args>` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .output()
            .expect("faaso can be run")
    }

    /// Runs `faaso <args>` and panics with its stderr unless it succeeds; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "faaso {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `faaso <args>` in the background (for concurrent runs).
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("faaso can be run")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::{OsStr, OsString};

    #[test]
    fn the_machines_login_and_variables_never_reach_a_test_cli() {
        let faaso = Faaso::in_dir(Path::new("/private/test"));
        let machine = [
            "FAASO_SERVER",
            "FAASO_PASSWORD",
            "FAASO_CA_CERT",
            "PATH",
            "HOME",
        ]
        .map(OsString::from);
        let command = faaso.isolated(Command::new("faaso"), machine.into_iter());
        let envs: Vec<(&OsStr, Option<&OsStr>)> = command.get_envs().collect();
        let value = |key: &str| {
            envs.iter()
                .rev()
                .find(|(k, _)| *k == OsStr::new(key))
                .map(|(_, v)| *v)
        };
        for key in ["FAASO_SERVER", "FAASO_PASSWORD", "FAASO_CA_CERT"] {
            assert_eq!(value(key), Some(None), "{key} is not removed");
        }
        let config = Path::new("/private/test/config").as_os_str();
        assert_eq!(value("XDG_CONFIG_HOME"), Some(Some(config)));
        assert_eq!(value("HOME"), Some(Some(config)));
        assert_eq!(value("PATH"), None, "other variables are left as they are");
    }
}
