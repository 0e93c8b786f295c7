//! The saved login: `$XDG_CONFIG_HOME/faaso/config.yml` (else `~/.config/faaso/config.yml`)
//! with the gateway's URL and the admin password, written atomically with mode 0600.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What `faaso login` saves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedLogin {
    pub server: String,
    pub password: String,
    /// A private CA's certificate for an `https://` server (`--cacert` at login).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
}

/// The config file's path.
pub fn config_path(env: impl Fn(&str) -> Option<String>) -> PathBuf {
    let non_empty = |key| env(key).filter(|v: &String| !v.is_empty());
    let base = match (non_empty("XDG_CONFIG_HOME"), non_empty("HOME")) {
        (Some(xdg), _) => PathBuf::from(xdg),
        (None, Some(home)) => PathBuf::from(home).join(".config"),
        (None, None) => PathBuf::from("."),
    };
    base.join("faaso").join("config.yml")
}

/// A login that cannot be read or saved.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct LoginError {
    pub path: PathBuf,
    pub message: String,
}

/// The saved login, if there is one.
pub fn load(path: &Path) -> Result<Option<SavedLogin>, LoginError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_yaml::from_str(&text)
            .map(Some)
            .map_err(|err| LoginError {
                path: path.to_path_buf(),
                message: err.to_string(),
            }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(LoginError {
            path: path.to_path_buf(),
            message: err.to_string(),
        }),
    }
}

/// Saves a login with mode 0600 (the folder 0700).
pub fn save(path: &Path, login: &SavedLogin) -> Result<(), LoginError> {
    let fail = |message: String| LoginError {
        path: path.to_path_buf(),
        message,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    crate::store::files::create_private_dir(dir).map_err(|e| fail(e.to_string()))?;
    let text = serde_yaml::to_string(login).map_err(|e| fail(e.to_string()))?;
    // Written 0600 and renamed over the old file: never readable by others, never half-written.
    crate::store::files::write_atomic(path, text.as_bytes()).map_err(|e| fail(e.to_string()))
}

/// Forgets the saved login; `Ok(None)` when there was none, else the server it was for.
pub fn remove(path: &Path) -> Result<Option<String>, LoginError> {
    // A file that cannot be read is removed all the same.
    let saved = load(path).ok().flatten();
    match std::fs::remove_file(path) {
        Ok(()) => Ok(Some(saved.map(|s| s.server).unwrap_or_default())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(LoginError {
            path: path.to_path_buf(),
            message: err.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path =
            config_path(|k| (k == "XDG_CONFIG_HOME").then(|| dir.path().display().to_string()));
        assert_eq!(load(&path).unwrap(), None);
        let login = SavedLogin {
            server: "http://gw:8888".into(),
            password: "pw".into(),
            ca_cert: Some("/etc/faaso/ca.pem".into()),
        };
        save(&path, &login).unwrap();
        assert_eq!(load(&path).unwrap(), Some(login));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert_eq!(
            config_path(|k| (k == "HOME").then(|| "/h".to_string())),
            PathBuf::from("/h/.config/faaso/config.yml")
        );
    }
}
