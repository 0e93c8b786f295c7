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
}

impl Faaso {
    /// Folders below `dir` (`state/`, `secrets/`), as [`crate::gateway::GatewayProcess`] uses.
    pub fn in_dir(dir: &Path) -> Faaso {
        Faaso {
            state_dir: dir.join("state"),
            secrets_dir: dir.join("secrets"),
            config_home: dir.join("config"),
            env: Vec::new(),
        }
    }

    pub fn command(&self) -> Command {
        let mut command = Command::new(crate::bins::path("faaso"));
        // Nothing from the machine configures a test's CLI: no FAASO_* variable, and a config
        // folder of its own (a saved `faaso login` of the machine is never used).
        for (key, _) in std::env::vars_os() {
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
