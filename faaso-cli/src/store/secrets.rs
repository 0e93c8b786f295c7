//! Secrets: one file per secret at `<secrets_dir>/<funko>/<secret>`, which instances see at
//! `/secrets/<secret>` through a read-only bind mount of the funko's folder (so a secret added
//! later is visible to running instances at once).
//!
//! Folders are created 0700 and files 0600; values are written atomically and never printed.
//! A funko whose image runs as a numeric non-root user (`USER 10001:10001`, as the built-in
//! runtimes do) could not read such files, so when FaaSO runs as root it hands the funko's
//! folder and files to that user.

use crate::store::files::is_root;
use std::path::{Path, PathBuf};

use crate::conventions::validate_name;

/// A secret operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "invalid secret name {name:?}: use letters, digits, `.`, `_` and `-` (no `/`, not `.` or `..`), at most 128 characters"
    )]
    InvalidName { name: String },
    #[error(transparent)]
    Funko(#[from] crate::conventions::InvalidName),
    #[error("funko {funko} has no secret {secret}")]
    NotFound { funko: String, secret: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SecretError + '_ {
    move |source| SecretError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Checks a secret name: a plain file name.
pub fn validate_secret_name(name: &str) -> Result<(), SecretError> {
    if crate::store::files::is_plain_name(name, 128) {
        Ok(())
    } else {
        Err(SecretError::InvalidName {
            name: name.to_string(),
        })
    }
}

/// The secrets folder.
#[derive(Debug, Clone)]
pub struct SecretsDir {
    root: PathBuf,
}

impl SecretsDir {
    pub fn new(root: impl Into<PathBuf>) -> SecretsDir {
        SecretsDir { root: root.into() }
    }

    /// The folder mounted at `/secrets` in the funko's instances.
    pub fn funko_dir(&self, funko: &str) -> PathBuf {
        self.root.join(funko)
    }

    /// Creates the funko's folder (0700) if needed, and returns it.
    pub fn ensure_funko_dir(&self, funko: &str) -> Result<PathBuf, SecretError> {
        validate_name(funko)?;
        let dir = self.funko_dir(funko);
        create_private_dir(&self.root)?;
        create_private_dir(&dir)?;
        Ok(dir)
    }

    /// Adds or replaces a secret.
    pub fn add(&self, funko: &str, secret: &str, value: &[u8]) -> Result<(), SecretError> {
        validate_secret_name(secret)?;
        let dir = self.ensure_funko_dir(funko)?;
        let path = dir.join(secret);
        // Written 0600 and renamed into place: the new value appears whole.
        crate::store::files::write_atomic(&path, value).map_err(io(&path))?;
        // A folder handed to the funko's user (see `give_to`) hands its new files over too.
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let owner = std::fs::metadata(&dir).map_err(io(&dir))?;
            if owner.uid() != 0 && is_root() {
                std::os::unix::fs::lchown(&path, Some(owner.uid()), Some(owner.gid()))
                    .map_err(io(&path))?;
            }
        }
        Ok(())
    }

    /// Removes a secret.
    pub fn remove(&self, funko: &str, secret: &str) -> Result<(), SecretError> {
        validate_secret_name(secret)?;
        validate_name(funko)?;
        let path = self.funko_dir(funko).join(secret);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(SecretError::NotFound {
                funko: funko.to_string(),
                secret: secret.to_string(),
            }),
            Err(source) => Err(SecretError::Io { path, source }),
        }
    }

    /// Secret names per funko (all funkos, or one), sorted.
    pub fn list(&self, funko: Option<&str>) -> Result<Vec<(String, Vec<String>)>, SecretError> {
        let funkos = match funko {
            Some(funko) => {
                validate_name(funko)?;
                vec![funko.to_string()]
            }
            None => match std::fs::read_dir(&self.root) {
                Ok(entries) => entries
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|name| crate::conventions::is_valid_name(name))
                    .collect(),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(source) => {
                    return Err(SecretError::Io {
                        path: self.root.clone(),
                        source,
                    });
                }
            },
        };
        let mut out = Vec::new();
        for funko in funkos {
            let dir = self.funko_dir(&funko);
            let mut names: Vec<String> = match std::fs::read_dir(&dir) {
                Ok(entries) => entries
                    .flatten()
                    .filter(|e| e.path().is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|name| validate_secret_name(name).is_ok())
                    .collect(),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(source) => return Err(SecretError::Io { path: dir, source }),
            };
            names.sort();
            out.push((funko, names));
        }
        out.sort();
        Ok(out)
    }

    /// Hands the funko's folder and files to `uid:gid` (the image's user) when running as root,
    /// so that a non-root funko can read its secrets. Does nothing for other callers.
    pub fn give_to(&self, funko: &str, uid: u32, gid: u32) -> Result<(), SecretError> {
        #[cfg(unix)]
        {
            if !is_root() {
                return Ok(());
            }
            let dir = self.ensure_funko_dir(funko)?;
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(io(&dir))?;
            for entry in std::fs::read_dir(&dir).map_err(io(&dir))?.flatten() {
                let path = entry.path();
                std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).map_err(io(&path))?;
            }
        }
        #[cfg(not(unix))]
        let _ = (funko, uid, gid);
        Ok(())
    }
}

/// The numeric `uid:gid` of an image's `USER`, when it is numeric and not root.
pub fn numeric_user(user: &str) -> Option<(u32, u32)> {
    let (uid, gid) = match user.split_once(':') {
        Some((uid, gid)) => (uid.parse().ok()?, gid.parse().ok()?),
        None => {
            let uid = user.parse().ok()?;
            (uid, uid)
        }
    };
    (uid != 0).then_some((uid, gid))
}

fn create_private_dir(dir: &Path) -> Result<(), SecretError> {
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            std::fs::create_dir(dir).map_err(io(dir))?;
        }
        Err(source) => {
            return Err(SecretError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    }
    crate::store::files::set_mode(dir, 0o700).map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["db_password", "api-key", "cert.pem", "A1"] {
            validate_secret_name(good).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "../x", "with space", &"x".repeat(129)] {
            assert!(validate_secret_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(numeric_user("10001:10001"), Some((10001, 10001)));
        assert_eq!(numeric_user("65534"), Some((65534, 65534)));
        assert_eq!(numeric_user("node"), None);
        assert_eq!(numeric_user("0:0"), None);
    }

    #[test]
    fn add_list_remove_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = SecretsDir::new(dir.path().join("secrets"));
        secrets.add("hello", "db_password", b"s3cret").unwrap();
        secrets.add("hello", "db_password", b"n3w").unwrap();
        secrets.add("other", "token", b"t").unwrap();
        let path = secrets.funko_dir("hello").join("db_password");
        assert_eq!(std::fs::read(&path).unwrap(), b"n3w");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&secrets.funko_dir("hello")), 0o700);
        }
        assert_eq!(
            secrets.list(None).unwrap(),
            vec![
                ("hello".to_string(), vec!["db_password".to_string()]),
                ("other".to_string(), vec!["token".to_string()]),
            ]
        );
        secrets.remove("hello", "db_password").unwrap();
        let err = secrets
            .remove("hello", "db_password")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "funko hello has no secret db_password");
        assert!(secrets.add("hello", "../escape", b"x").is_err());
        assert!(!dir.path().join("secrets/escape").exists());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A valid secret name is one plain file name: never a path, never `.` or `..`.
        #[test]
        fn secret_names_are_plain_file_names(name in "\\PC{0,140}|[A-Za-z0-9._-]{0,140}") {
            if validate_secret_name(&name).is_ok() {
                prop_assert!(!name.is_empty() && name.len() <= 128);
                prop_assert!(!name.contains('/') && !name.contains('\\') && !name.contains('\0'));
                prop_assert!(name != "." && name != "..");
                let joined = std::path::Path::new("/secrets").join(&name);
                prop_assert_eq!(joined.parent(), Some(std::path::Path::new("/secrets")));
            }
        }
    }
}
