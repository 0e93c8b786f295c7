//! API keys of private funkos (`access: private`): `<state_dir>/keys/<funko>.json`, a list of
//! `{name, created, hash}` (folder 0700, file 0600, written whole or not at all).
//!
//! A key is `fk_` and 43 base64url characters: 32 bytes from the operating system's random
//! source, shown once when it is made and never stored. What is stored is its BLAKE2b-256 hash.
//! A key has 256 bits of entropy, so a slow password hash (argon2) would add nothing but cost
//! on every request: nobody can guess a key from its hash, and the gateway checks a key with one
//! fast hash and a set lookup.
//!
//! Changes are read-modify-write under a lock file per funko, so the CLI's local mode and the
//! gateway's admin API can both change keys.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use blake2::Digest;
use serde::{Deserialize, Serialize};

use crate::conventions::validate_name;
use crate::store::files::{create_private_dir, write_atomic};

/// What every key starts with (so a leaked one is easy to recognize in a scan).
pub const KEY_PREFIX: &str = "fk_";

/// Keys a funko may have.
pub const MAX_KEYS: usize = 1000;

/// The stored hash of a key.
pub type KeyHash = [u8; 32];

/// BLAKE2b-256 of a key's text, as the gateway checks it.
pub fn hash(key: &[u8]) -> KeyHash {
    blake2::Blake2b::<blake2::digest::consts::U32>::digest(key).into()
}

/// A key operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "invalid key name {name:?}: use letters, digits, `.`, `_` and `-` (not `.` or `..`), at most 64 characters"
    )]
    InvalidName { name: String },
    #[error(transparent)]
    Funko(#[from] crate::conventions::InvalidName),
    #[error("funko {funko} has no key named {name}")]
    NotFound { funko: String, name: String },
    #[error("funko {funko} already has a key named {name}")]
    Exists { funko: String, name: String },
    #[error("funko {funko} has {MAX_KEYS} keys, the most it may have")]
    TooMany { funko: String },
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |err| KeyError::Io {
        path: path.to_path_buf(),
        message: err.to_string(),
    }
}

/// A key as listed: never its value or hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub name: String,
    /// When it was made, in seconds since the Unix epoch.
    pub created: u64,
}

/// A key just made: the only time its value exists outside the client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewKey {
    pub name: String,
    pub created: u64,
    pub key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredKey {
    name: String,
    created: u64,
    /// BLAKE2b-256 of the key, hexadecimal.
    blake2b: String,
}

/// Checks a key's name: letters, digits, `.`, `_`, `-` (not `.` or `..`), at most 64 characters.
pub fn validate_key_name(name: &str) -> Result<(), KeyError> {
    if crate::store::files::is_plain_name(name, 64) {
        Ok(())
    } else {
        Err(KeyError::InvalidName {
            name: name.to_string(),
        })
    }
}

/// The keys folder, `<state_dir>/keys`.
#[derive(Debug, Clone)]
pub struct KeyStore {
    dir: PathBuf,
}

impl KeyStore {
    /// The key store of a state folder.
    pub fn new(state_dir: &Path) -> KeyStore {
        KeyStore {
            dir: state_dir.join("keys"),
        }
    }

    /// The folder the gateway watches.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, funko: &str) -> PathBuf {
        self.dir.join(format!("{funko}.json"))
    }

    /// Makes a key for `funko`, named `name` or `key-<n>` (the first free `n`), and returns its
    /// value.
    pub fn add(&self, funko: &str, name: Option<&str>) -> Result<NewKey, KeyError> {
        validate_name(funko)?;
        if let Some(name) = name {
            validate_key_name(name)?;
        }
        let _lock = self.lock(funko)?;
        let mut keys = self.read(funko)?;
        if keys.len() >= MAX_KEYS {
            return Err(KeyError::TooMany {
                funko: funko.to_string(),
            });
        }
        let name = match name {
            Some(name) if keys.iter().any(|k| k.name == name) => {
                return Err(KeyError::Exists {
                    funko: funko.to_string(),
                    name: name.to_string(),
                });
            }
            Some(name) => name.to_string(),
            None => (1..)
                .map(|n| format!("key-{n}"))
                .find(|candidate| !keys.iter().any(|k| &k.name == candidate))
                .unwrap_or_default(),
        };
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(|err| KeyError::Io {
            path: PathBuf::from("the operating system's random source"),
            message: err.to_string(),
        })?;
        let key = format!(
            "{KEY_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
        );
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        keys.push(StoredKey {
            name: name.clone(),
            created,
            blake2b: to_hex(&hash(key.as_bytes())),
        });
        self.write(funko, &keys)?;
        Ok(NewKey { name, created, key })
    }

    /// The funko's keys (names and creation times), oldest first.
    pub fn list(&self, funko: &str) -> Result<Vec<KeyInfo>, KeyError> {
        validate_name(funko)?;
        Ok(self
            .read(funko)?
            .into_iter()
            .map(|k| KeyInfo {
                name: k.name,
                created: k.created,
            })
            .collect())
    }

    /// Removes the funko's key `name`.
    pub fn remove(&self, funko: &str, name: &str) -> Result<(), KeyError> {
        validate_name(funko)?;
        validate_key_name(name)?;
        let _lock = self.lock(funko)?;
        let mut keys = self.read(funko)?;
        let before = keys.len();
        keys.retain(|k| k.name != name);
        if keys.len() == before {
            return Err(KeyError::NotFound {
                funko: funko.to_string(),
                name: name.to_string(),
            });
        }
        self.write(funko, &keys)
    }

    /// Every funko's key hashes, for the gateway; a file that cannot be read is reported and
    /// its funko gets no keys (its requests are refused, never let through).
    pub fn load_all(&self) -> (HashMap<String, Vec<KeyHash>>, Vec<KeyError>) {
        let mut all = HashMap::new();
        let mut errors = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return (all, errors),
            Err(err) => return (all, vec![io(&self.dir)(err)]),
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(funko) = file_name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if validate_name(funko).is_err() {
                continue;
            }
            match self.read(funko) {
                Ok(keys) => {
                    let hashes = keys.iter().filter_map(|k| from_hex(&k.blake2b)).collect();
                    all.insert(funko.to_string(), hashes);
                }
                Err(err) => errors.push(err),
            }
        }
        (all, errors)
    }

    /// What changes when any key file changes: each file's name, length and modification time.
    pub fn fingerprint(&self) -> Vec<(std::ffi::OsString, u64, Option<SystemTime>)> {
        let mut seen: Vec<_> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let meta = entry.metadata().ok()?;
                Some((entry.file_name(), meta.len(), meta.modified().ok()))
            })
            .collect();
        seen.sort();
        seen
    }

    fn read(&self, funko: &str) -> Result<Vec<StoredKey>, KeyError> {
        let path = self.file(funko);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|err| KeyError::Io {
                path,
                message: format!("not a key list: {err}"),
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(err) => Err(io(&path)(err)),
        }
    }

    fn write(&self, funko: &str, keys: &[StoredKey]) -> Result<(), KeyError> {
        let path = self.file(funko);
        if keys.is_empty() {
            return match std::fs::remove_file(&path) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(io(&path)(err)),
                _ => Ok(()),
            };
        }
        let text = serde_json::to_vec_pretty(keys).map_err(|err| KeyError::Io {
            path: path.clone(),
            message: err.to_string(),
        })?;
        write_atomic(&path, &text).map_err(io(&path))
    }

    /// The funko's key lock, held for one read-modify-write (quick: no operation waits long).
    fn lock(&self, funko: &str) -> Result<File, KeyError> {
        create_private_dir(&self.dir).map_err(io(&self.dir))?;
        let path = self.dir.join(format!(".{funko}.lock"));
        let file = File::create(&path).map_err(io(&path))?;
        file.lock().map_err(io(&path))?;
        Ok(file)
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<KeyHash> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_made_listed_checked_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path());
        let first = store.add("hello", None).unwrap();
        let second = store.add("hello", Some("ci")).unwrap();
        assert_eq!(first.name, "key-1");
        assert!(first.key.starts_with(KEY_PREFIX) && first.key.len() == 46);
        assert_ne!(first.key, second.key);
        let names: Vec<String> = store
            .list("hello")
            .unwrap()
            .into_iter()
            .map(|k| k.name)
            .collect();
        assert_eq!(names, ["key-1", "ci"]);
        // Only hashes are stored, in a private file.
        let path = dir.path().join("keys/hello.json");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&first.key[3..]), "{text}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (all, errors) = store.load_all();
        assert!(errors.is_empty());
        assert_eq!(
            all["hello"],
            [hash(first.key.as_bytes()), hash(second.key.as_bytes())]
        );

        assert!(matches!(
            store.add("hello", Some("ci")),
            Err(KeyError::Exists { .. })
        ));
        assert!(matches!(
            store.add("hello", Some("a/b")),
            Err(KeyError::InvalidName { .. })
        ));
        store.remove("hello", "key-1").unwrap();
        assert!(matches!(
            store.remove("hello", "key-1"),
            Err(KeyError::NotFound { .. })
        ));
        // The freed name is used again.
        assert_eq!(store.add("hello", None).unwrap().name, "key-1");
        store.remove("hello", "key-1").unwrap();
        store.remove("hello", "ci").unwrap();
        assert!(!path.exists(), "no keys, no file");
    }

    #[test]
    fn a_broken_file_gives_its_funko_no_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path());
        store.add("good", None).unwrap();
        std::fs::write(dir.path().join("keys/bad.json"), "{").unwrap();
        let (all, errors) = store.load_all();
        assert_eq!(all.len(), 1);
        assert!(errors[0].to_string().contains("bad.json"), "{}", errors[0]);
        let before = store.fingerprint();
        store.add("good", None).unwrap();
        assert_ne!(store.fingerprint(), before);
    }
}
