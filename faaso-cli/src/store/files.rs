//! File helpers shared by the CLI and the gateway: whole-or-nothing private writes, file modes,
//! private folders, and who we run as.

use std::io::Write;
use std::path::Path;

/// Writes `contents` to `path` so that readers see the old file or the new one, never a part:
/// a temporary file in the same folder (mode 0600), written, flushed to disk, renamed over
/// `path`, and the folder flushed so the rename survives a crash.
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(contents)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|err| err.error)?;
    #[cfg(unix)]
    if let Ok(folder) = std::fs::File::open(dir) {
        // Best effort: some filesystems refuse fsync on a folder.
        let _ = folder.sync_all();
    }
    Ok(())
}

/// Whether `name` is a plain file name of at most `max_len` characters: letters, digits, `.`,
/// `_` and `-`, not `.` or `..` (secret and key names).
pub fn is_plain_name(name: &str, max_len: usize) -> bool {
    !name.is_empty()
        && name.len() <= max_len
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Sets a file's permission bits (no-op off Unix).
pub fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// Creates `dir` (and its parents) and makes it private (0700).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    set_mode(dir, 0o700)
}

/// Whether a symbolic link's target, resolved lexically from the link's folder (`link_dir`,
/// relative to the root of a tree), stays inside that tree. Absolute targets never do.
pub fn link_stays_inside(link_dir: &Path, target: &Path) -> bool {
    use std::path::Component;
    if target.is_absolute() {
        return false;
    }
    let mut depth: i64 = 0;
    for component in link_dir.components().chain(target.components()) {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// Whether this process runs as root (effective user 0).
pub fn is_root() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() == 0 }
    }
    #[cfg(not(unix))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_inside_and_out() {
        let inside = |dir: &str, target: &str| link_stays_inside(Path::new(dir), Path::new(target));
        assert!(inside("", "a/b"));
        assert!(inside("a/b", "../c"));
        assert!(inside("a/b", "../../c"));
        assert!(!inside("a/b", "../../../c"));
        assert!(!inside("", ".."));
        assert!(!inside("a", "/etc/passwd"));
        assert!(
            inside("up/up/up", "../../.."),
            "lexically inside: why entries are walked too"
        );
        assert!(!inside("a", "b/../../.."));
    }

    #[test]
    fn atomic_writes_replace_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.yml");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        // Nothing else is left in the folder.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let private = dir.path().join("a/b");
        create_private_dir(&private).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700);
        }
    }
}
