//! Saved state under `state_dir`: each funko's desired scale (`<state_dir>/funkos/<name>.yml`,
//! written atomically on every change, restored by the gateway at start), and the per-funko lock
//! (`<state_dir>/locks/<name>.lock`) that keeps two scale or deploy runs on one funko from
//! overshooting.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// State that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct StateError {
    pub path: PathBuf,
    pub message: String,
}

/// The start of the message of a lock held by another operation.
const BUSY: &str = "another operation on ";

impl StateError {
    /// Whether this is a lock that another operation holds (see [`StateDir::lock`]).
    pub fn is_busy(&self) -> bool {
        self.message.starts_with(BUSY)
    }
}

fn state_error(path: &Path) -> impl Fn(std::io::Error) -> StateError + '_ {
    move |err| StateError {
        path: path.to_path_buf(),
        message: err.to_string(),
    }
}

/// What is saved per funko.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunkoState {
    /// Instances the funko should have.
    pub scale: u32,
}

/// What [`StateDir::all`] found.
#[derive(Debug, Default)]
pub struct Listing {
    pub funkos: Vec<(String, FunkoState)>,
    /// Funkos whose file could not be read, with why.
    pub unreadable: Vec<(String, StateError)>,
}

/// The state folder.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> StateDir {
        StateDir { root: root.into() }
    }

    fn funko_path(&self, funko: &str) -> PathBuf {
        self.root.join("funkos").join(format!("{funko}.yml"))
    }

    /// The saved state of a funko, if any.
    pub fn load(&self, funko: &str) -> Result<Option<FunkoState>, StateError> {
        let path = self.funko_path(funko);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(state_error(&path)(err)),
        };
        serde_yaml::from_str(&text)
            .map(Some)
            .map_err(|err| StateError {
                path,
                message: err.to_string(),
            })
    }

    /// Saves a funko's state: written whole and flushed to disk before it replaces the old one.
    pub fn save(&self, funko: &str, state: FunkoState) -> Result<(), StateError> {
        let path = self.funko_path(funko);
        let dir = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir).map_err(state_error(dir))?;
        let text = serde_yaml::to_string(&state).map_err(|err| StateError {
            path: path.clone(),
            message: err.to_string(),
        })?;
        crate::store::files::write_atomic(&path, text.as_bytes()).map_err(state_error(&path))
    }

    /// Forgets a funko's state.
    pub fn remove(&self, funko: &str) -> Result<(), StateError> {
        let path = self.funko_path(funko);
        self.set_problem(funko, None)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(state_error(&path)(err)),
        }
    }

    fn problem_path(&self, funko: &str) -> PathBuf {
        self.root.join("problems").join(format!("{funko}.txt"))
    }

    /// Records why the funko is not at its saved scale (the gateway's reconcile loop), or
    /// clears it with `None`.
    pub fn set_problem(&self, funko: &str, problem: Option<&str>) -> Result<(), StateError> {
        let path = self.problem_path(funko);
        match problem {
            Some(text) => {
                let dir = path.parent().unwrap_or(&self.root);
                std::fs::create_dir_all(dir).map_err(state_error(dir))?;
                crate::store::files::write_atomic(&path, text.as_bytes())
                    .map_err(state_error(&path))
            }
            None => match std::fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(err) => Err(state_error(&path)(err)),
            },
        }
    }

    /// Why the funko is not at its saved scale, if the reconcile loop recorded a reason.
    pub fn problem(&self, funko: &str) -> Option<String> {
        std::fs::read_to_string(self.problem_path(funko))
            .ok()
            .filter(|text| !text.trim().is_empty())
    }

    /// Records which funko each claimed domain is routed to and which claims were refused (the
    /// gateway writes it when that changes; `faaso status` shows the refusals).
    pub fn save_domains(&self, claims: &DomainClaims) -> Result<(), StateError> {
        let path = self.root.join("domains.json");
        std::fs::create_dir_all(&self.root).map_err(state_error(&self.root))?;
        let text = serde_json::to_vec_pretty(claims).map_err(|err| StateError {
            path: path.clone(),
            message: err.to_string(),
        })?;
        crate::store::files::write_atomic(&path, &text).map_err(state_error(&path))
    }

    /// What [`StateDir::save_domains`] wrote last; empty when nothing was (or it is unreadable).
    pub fn domains(&self) -> DomainClaims {
        std::fs::read(self.root.join("domains.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Every funko with saved state, with its state; files that cannot be read are listed
    /// apart, so one corrupt file does not hide the others.
    pub fn all(&self) -> Result<Listing, StateError> {
        let dir = self.root.join("funkos");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Listing::default());
            }
            Err(err) => return Err(state_error(&dir)(err)),
        };
        let mut all = Vec::new();
        let mut unreadable = Vec::new();
        for entry in entries.flatten() {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let Some(funko) = file_name.strip_suffix(".yml") else {
                continue;
            };
            if !crate::conventions::is_valid_name(funko) {
                continue;
            }
            match self.load(funko) {
                Ok(Some(state)) => all.push((funko.to_string(), state)),
                Ok(None) => {}
                Err(err) => unreadable.push((funko.to_string(), err)),
            }
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        unreadable.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Listing {
            funkos: all,
            unreadable,
        })
    }

    /// Takes the funko's lock, waiting for another holder (checked every 50 ms) up to
    /// `timeout`. Released when the guard is dropped (or the process exits).
    pub async fn lock(&self, funko: &str, timeout: Duration) -> Result<FunkoLock, StateError> {
        let dir = self.root.join("locks");
        std::fs::create_dir_all(&dir).map_err(state_error(&dir))?;
        let path = dir.join(format!("{funko}.lock"));
        let file = File::create(&path).map_err(state_error(&path))?;
        let start = std::time::Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(FunkoLock { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < timeout => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(StateError {
                        path,
                        message: format!("{BUSY}{funko} holds the lock (waited {timeout:?})"),
                    });
                }
                Err(std::fs::TryLockError::Error(err)) => return Err(state_error(&path)(err)),
            }
        }
    }
}

impl StateDir {
    /// Whether another operation holds the funko's lock right now (a look, not a wait: the
    /// answer may be stale by the time it is used).
    pub fn is_locked(&self, funko: &str) -> bool {
        let path = self.root.join("locks").join(format!("{funko}.lock"));
        match File::options().write(true).open(&path) {
            Ok(file) => matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
            Err(_) => false,
        }
    }
}

/// Which funko each claimed domain goes to, and the claims refused because another funko held
/// the domain first.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DomainClaims {
    /// Domain → the funko it is routed to.
    pub owners: std::collections::BTreeMap<String, String>,
    pub refused: Vec<RefusedDomain>,
}

/// A domain claim that was refused.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RefusedDomain {
    pub domain: String,
    /// The funko whose claim was refused.
    pub funko: String,
    /// The funko the domain is routed to.
    pub owner: String,
}

/// A held per-funko lock.
#[derive(Debug)]
pub struct FunkoLock {
    _file: File,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        assert_eq!(state.load("hello").unwrap(), None);
        state.save("hello", FunkoState { scale: 3 }).unwrap();
        state.save("other", FunkoState { scale: 0 }).unwrap();
        assert_eq!(state.load("hello").unwrap(), Some(FunkoState { scale: 3 }));
        assert_eq!(state.all().unwrap().funkos.len(), 2);
        state.remove("hello").unwrap();
        assert_eq!(state.load("hello").unwrap(), None);
        std::fs::write(dir.path().join("funkos/broken.yml"), "scale: lots\n").unwrap();
        let err = state.load("broken").unwrap_err().to_string();
        assert!(err.contains("broken.yml"), "{err}");
        // One corrupt file does not hide the others.
        let listing = state.all().unwrap();
        assert_eq!(
            listing.funkos,
            [("other".to_string(), FunkoState { scale: 0 })]
        );
        assert_eq!(listing.unreadable.len(), 1);
        assert_eq!(listing.unreadable[0].0, "broken");
    }

    #[tokio::test]
    async fn the_lock_excludes_a_second_holder() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        assert!(!state.is_locked("hello"), "no lock file yet");
        let held = state.lock("hello", Duration::from_secs(1)).await.unwrap();
        assert!(state.is_locked("hello"));
        assert!(!state.is_locked("other"));
        let err = state
            .lock("hello", Duration::from_millis(120))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("holds the lock"), "{err}");
        let _other = state
            .lock("other", Duration::from_millis(10))
            .await
            .unwrap();
        drop(held);
        assert!(!state.is_locked("hello"), "a look does not hold it");
        state
            .lock("hello", Duration::from_millis(10))
            .await
            .unwrap();
    }
}
