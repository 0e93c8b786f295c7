//! What one gateway process owns on its host besides its ports: its `state_dir` (a lock file
//! that a second gateway on the same folder finds taken, naming the holder) and as many file
//! descriptors as the system allows it (the soft limit raised to the hard one at start).

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The lock file in `state_dir`.
pub const LOCK_FILE: &str = "gateway.lock";

/// A `state_dir` that another gateway holds, or that cannot be locked.
#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    #[error(
        "state_dir {dir} is in use by another faaso-gateway ({holder}); give each gateway its own state_dir"
    )]
    Taken { dir: PathBuf, holder: String },
    #[error("state_dir {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The held lock on a `state_dir`: kept for the life of the process (the kernel drops it when
/// the process ends, however it ends).
#[derive(Debug)]
pub struct StateLock {
    file: File,
}

impl StateLock {
    /// Takes `state_dir`'s lock, creating the folder if needed, or says who holds it.
    pub fn take(state_dir: &Path, listen: &str) -> Result<StateLock, OwnerError> {
        let file = open(state_dir)?;
        if !flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
            return Err(OwnerError::Taken {
                dir: state_dir.to_path_buf(),
                holder: holder_of(&file),
            });
        }
        let mut lock = StateLock { file };
        lock.record(listen).map_err(|source| OwnerError::Io {
            dir: state_dir.to_path_buf(),
            source,
        })?;
        Ok(lock)
    }

    /// Waits until the process handing over in a `-u` upgrade releases `state_dir`, then takes
    /// it; on a thread of its own, so the new process serves meanwhile.
    pub fn take_after_upgrade(state_dir: PathBuf, listen: String) {
        std::thread::spawn(move || {
            let result = open(&state_dir).and_then(|file| {
                if !flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
                    let holder = holder_of(&file);
                    tracing::info!(%holder, "state_dir: waiting for the process handing over to exit");
                    flock(&file, libc::LOCK_EX);
                }
                let mut lock = StateLock { file };
                lock.record(&listen).map_err(|source| OwnerError::Io {
                    dir: state_dir.clone(),
                    source,
                })?;
                Ok(lock)
            });
            match result {
                // Held until the process ends.
                Ok(lock) => std::mem::forget(lock),
                Err(err) => tracing::warn!(error = %err, "cannot lock state_dir"),
            }
        });
    }

    /// Writes who holds the lock (after a `-d` fork too: the pid changes).
    pub fn record(&mut self, listen: &str) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        writeln!(
            self.file,
            "faaso-gateway pid {} listening on {listen}",
            std::process::id()
        )?;
        self.file.flush()
    }
}

fn open(state_dir: &Path) -> Result<File, OwnerError> {
    let io = |source| OwnerError::Io {
        dir: state_dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(state_dir).map_err(io)?;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode_0600()
        .open(state_dir.join(LOCK_FILE))
        .map_err(io)
}

/// `flock`, retried when a signal interrupts it; `false` when the lock is held elsewhere.
fn flock(file: &File, operation: i32) -> bool {
    loop {
        // SAFETY: a plain system call on a descriptor this function borrows.
        let result = unsafe { libc::flock(file.as_raw_fd(), operation) };
        if result == 0 {
            return true;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return false;
        }
    }
}

/// What the holder wrote in the lock file.
fn holder_of(mut file: &File) -> String {
    let mut text = String::new();
    let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
    let text = text.trim();
    if text.is_empty() {
        "its pid is not recorded".to_string()
    } else {
        text.to_string()
    }
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}

/// The process's file descriptor limits after start: `(soft before, soft now, hard)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorLimits {
    pub before: u64,
    pub now: u64,
    pub hard: u64,
}

/// Raises the soft limit on open files to the hard one.
pub fn raise_descriptor_limit() -> std::io::Result<DescriptorLimits> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit`/`setrlimit` read and write the struct this function owns.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        limit = raised;
    }
    Ok(DescriptorLimits {
        before,
        now: limit.rlim_cur,
        hard: limit.rlim_max,
    })
}

/// Descriptors kept aside from client connections for everything else: listeners, the Docker
/// socket, files, health checks.
pub const RESERVED_DESCRIPTORS: u64 = 64;

/// The default `max_connections` for a descriptor limit: half of what is left after the
/// reserve, because each client connection being answered may hold a connection to an
/// instance too.
pub fn default_max_connections(descriptors: u64) -> usize {
    let usable = descriptors.saturating_sub(RESERVED_DESCRIPTORS) / 2;
    usize::try_from(usable).unwrap_or(usize::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_record() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let first = StateLock::take(&state, "127.0.0.1:1").unwrap();
        let err = StateLock::take(&state, "127.0.0.1:2")
            .unwrap_err()
            .to_string();
        let pid = std::process::id();
        assert!(
            err.contains(&format!("faaso-gateway pid {pid} listening on 127.0.0.1:1")),
            "{err}"
        );
        assert!(err.starts_with(&format!("state_dir {} is in use", state.display())));
        drop(first);
        let again = StateLock::take(&state, "127.0.0.1:3").unwrap();
        let text = std::fs::read_to_string(state.join(LOCK_FILE)).unwrap();
        assert_eq!(
            text,
            format!("faaso-gateway pid {pid} listening on 127.0.0.1:3\n")
        );
        drop(again);
    }

    #[test]
    fn max_connections_leaves_room_for_instances() {
        assert_eq!(default_max_connections(1024), 480);
        assert_eq!(default_max_connections(1_048_576), 524_256);
        assert_eq!(default_max_connections(10), 1);
    }

    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        let limits = raise_descriptor_limit().unwrap();
        assert_eq!(limits.now, limits.hard);
        assert!(limits.before <= limits.now);
    }
}
