//! Build-context uploads (`.tar.gz`), unpacked safely into a private temporary folder.
//!
//! The body is streamed: chunks go through a bounded channel to a blocking thread that
//! decompresses and unpacks as they arrive, so an upload is never held whole in memory. Limits:
//! the compressed size (`max_upload_bytes`, checked on `Content-Length` and while reading), the
//! unpacked size and the number of entries (a gzip bomb stops at the limit). Refused: absolute
//! paths, `..`, links that point outside the folder, hard links, devices and FIFOs. The folder
//! is a `TempDir`: it is removed whatever happens.

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc;

use bytes::Bytes;

/// Upload limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Compressed bytes.
    pub max_body: u64,
    /// Bytes of all files once unpacked.
    pub max_unpacked: u64,
    /// Tar entries.
    pub max_entries: u64,
}

/// Why an upload was refused; each maps to a 4xx.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UploadError {
    #[error("upload larger than {0} bytes")]
    TooLarge(u64),
    #[error("unpacked context larger than {0} bytes")]
    UnpackedTooLarge(u64),
    #[error("more than {0} entries in the archive")]
    TooManyEntries(u64),
    #[error("not a valid .tar.gz: {0}")]
    Malformed(String),
    #[error("refused entry {path:?}: {reason}")]
    Unsafe { path: String, reason: String },
    #[error("the upload was cut off: {0}")]
    Incomplete(String),
}

impl UploadError {
    /// The HTTP status for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            UploadError::TooLarge(_)
            | UploadError::UnpackedTooLarge(_)
            | UploadError::TooManyEntries(_) => 413,
            UploadError::Malformed(_) | UploadError::Unsafe { .. } | UploadError::Incomplete(_) => {
                400
            }
        }
    }
}

/// A `Read` over body chunks arriving through a channel.
struct ChannelReader {
    chunks: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.recv() {
                Ok(chunk) => self.current = chunk,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Feeds body chunks to an unpacker running on a blocking thread.
pub struct Unpacker {
    sender: Option<mpsc::SyncSender<Bytes>>,
    task: tokio::task::JoinHandle<Result<(), UploadError>>,
    received: u64,
    limits: Limits,
}

impl Unpacker {
    /// Starts unpacking into `dest` (an empty folder).
    pub fn start(dest: PathBuf, limits: Limits) -> Unpacker {
        let (sender, chunks) = mpsc::sync_channel::<Bytes>(16);
        let task = tokio::task::spawn_blocking(move || {
            let reader = ChannelReader {
                chunks,
                current: Bytes::new(),
            };
            unpack(reader, &dest, limits)
        });
        Unpacker {
            sender: Some(sender),
            task,
            received: 0,
            limits,
        }
    }

    /// Passes one chunk on; `Err` once the compressed limit is passed.
    pub async fn feed(&mut self, chunk: Bytes) -> Result<(), UploadError> {
        self.received += chunk.len() as u64;
        if self.received > self.limits.max_body {
            self.sender = None;
            return Err(UploadError::TooLarge(self.limits.max_body));
        }
        let Some(sender) = self.sender.clone() else {
            return Ok(());
        };
        // The channel is bounded: wait on a blocking thread rather than stall the runtime.
        let sent = tokio::task::spawn_blocking(move || sender.send(chunk)).await;
        if !matches!(sent, Ok(Ok(()))) {
            // The unpacker stopped (it refused something): its error is reported by `finish`.
            self.sender = None;
        }
        Ok(())
    }

    /// Ends the input and waits for the unpacker's verdict.
    pub async fn finish(mut self) -> Result<(), UploadError> {
        self.sender = None;
        match self.task.await {
            Ok(result) => result,
            Err(err) => Err(UploadError::Incomplete(err.to_string())),
        }
    }
}

/// Unpacks a gzip-compressed tar from `input` into `dest` with every check.
pub fn unpack(input: impl Read, dest: &Path, limits: Limits) -> Result<(), UploadError> {
    let decoder = flate2::read::GzDecoder::new(input);
    let mut archive = tar::Archive::new(decoder);
    let entries = archive
        .entries()
        .map_err(|e| UploadError::Malformed(e.to_string()))?;
    let mut count = 0u64;
    let mut unpacked = 0u64;
    for entry in entries {
        let mut entry = entry.map_err(|e| UploadError::Malformed(e.to_string()))?;
        count += 1;
        if count > limits.max_entries {
            return Err(UploadError::TooManyEntries(limits.max_entries));
        }
        let raw_path = entry
            .path()
            .map_err(|e| UploadError::Malformed(e.to_string()))?
            .into_owned();
        let shown = raw_path.display().to_string();
        let unsafe_entry = |reason: &str| UploadError::Unsafe {
            path: shown.clone(),
            reason: reason.to_string(),
        };
        let relative = safe_relative(&raw_path).map_err(&unsafe_entry)?;
        let Some(relative) = relative else { continue };
        let target = dest.join(&relative);
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => {
                std::fs::create_dir_all(&target).map_err(|e| unsafe_entry(&e.to_string()))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry
                    .header()
                    .size()
                    .map_err(|e| UploadError::Malformed(e.to_string()))?;
                if unpacked + size > limits.max_unpacked {
                    return Err(UploadError::UnpackedTooLarge(limits.max_unpacked));
                }
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| unsafe_entry(&e.to_string()))?;
                }
                refuse_link_in_path(dest, &relative).map_err(|reason| unsafe_entry(&reason))?;
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&target)
                    .map_err(|e| unsafe_entry(&e.to_string()))?;
                // Copy at most the declared size: a lying header cannot write more.
                let written = std::io::copy(&mut (&mut entry).take(size), &mut file)
                    .map_err(|e| UploadError::Malformed(e.to_string()))?;
                unpacked += written;
                let executable = entry
                    .header()
                    .mode()
                    .map(|m| m & 0o111 != 0)
                    .unwrap_or(false);
                set_mode(&target, if executable { 0o755 } else { 0o644 });
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(|e| UploadError::Malformed(e.to_string()))?
                    .ok_or_else(|| unsafe_entry("symbolic link without a target"))?
                    .into_owned();
                let link_dir = relative.parent().unwrap_or(Path::new(""));
                if !link_stays_inside(link_dir, &link) {
                    return Err(unsafe_entry(&format!(
                        "symbolic link to {} leads out of the context",
                        link.display()
                    )));
                }
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| unsafe_entry(&e.to_string()))?;
                }
                #[cfg(unix)]
                std::os::unix::fs::symlink(&link, &target)
                    .map_err(|e| unsafe_entry(&e.to_string()))?;
            }
            tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => {}
            tar::EntryType::Link => return Err(unsafe_entry("hard links are not accepted")),
            other => {
                return Err(unsafe_entry(&format!(
                    "entry type {other:?} is not accepted (devices, FIFOs)"
                )));
            }
        }
    }
    Ok(())
}

/// The entry's path made relative and checked: no absolute paths, no `..`. `Ok(None)` for
/// the archive's root (`./`).
fn safe_relative(path: &Path) -> Result<Option<PathBuf>, &'static str> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("`..` in the path"),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path"),
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Whether a link target, resolved lexically from `link_dir` (relative to the root), stays
/// inside the root.
fn link_stays_inside(link_dir: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: i64 = link_dir
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count() as i64;
    for component in target.components() {
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

/// Refuses to write through a symbolic link that an earlier entry created.
fn refuse_link_in_path(dest: &Path, relative: &Path) -> Result<(), String> {
    let mut current = dest.to_path_buf();
    for component in relative.components() {
        current.push(component);
        if current
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            return Err(format!("{} is a symbolic link", current.display()));
        }
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const LIMITS: Limits = Limits {
        max_body: 1 << 20,
        max_unpacked: 1 << 20,
        max_entries: 100,
    };

    fn gz(tar: Vec<u8>) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&tar).unwrap();
        encoder.finish().unwrap()
    }

    /// A tar with raw paths (the tar crate's builder refuses `..`, so headers are written by hand).
    fn raw_tar(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (path, kind, data, link) in entries {
            let mut header = tar::Header::new_gnu();
            let name = header.as_old_mut().name.as_mut();
            name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            if let Some(link) = link {
                let field = &mut header.as_old_mut().linkname;
                field[..link.len()].copy_from_slice(link.as_bytes());
            }
            header.set_cksum();
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    fn try_unpack(
        entries: &[(&str, tar::EntryType, &[u8], Option<&str>)],
    ) -> (tempfile::TempDir, Result<(), UploadError>) {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("ctx");
        std::fs::create_dir(&dest).unwrap();
        let result = unpack(gz(raw_tar(entries)).as_slice(), &dest, LIMITS);
        (dir, result)
    }

    use tar::EntryType::{Directory, Link, Regular, Symlink};

    #[test]
    fn a_plain_context_unpacks() {
        let (dir, result) = try_unpack(&[
            ("Dockerfile", Regular, b"FROM scratch\n", None),
            ("src/", Directory, b"", None),
            ("src/main.rs", Regular, b"fn main() {}\n", None),
            ("link", Symlink, b"", Some("src/main.rs")),
        ]);
        result.unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("ctx/src/main.rs")).unwrap(),
            b"fn main() {}\n"
        );
    }

    #[test]
    fn hostile_entries_are_refused_and_nothing_escapes() {
        for (entries, expected) in [
            (
                vec![("../evil", Regular, &b"x"[..], None)],
                "`..` in the path",
            ),
            (
                vec![("/etc/evil", Regular, &b"x"[..], None)],
                "absolute path",
            ),
            (
                vec![("out", Symlink, &b""[..], Some("../../etc"))],
                "leads out of the context",
            ),
            (
                vec![("abs", Symlink, &b""[..], Some("/etc/passwd"))],
                "leads out of the context",
            ),
            (
                vec![("hard", Link, &b""[..], Some("Dockerfile"))],
                "hard links",
            ),
            (
                vec![("dev", tar::EntryType::Char, &b""[..], None)],
                "not accepted",
            ),
        ] {
            let (dir, result) = try_unpack(&entries);
            let err = result.unwrap_err();
            assert_eq!(err.status(), 400);
            assert!(err.to_string().contains(expected), "{err}");
            assert!(!dir.path().join("evil").exists());
        }
    }

    #[test]
    fn limits_hold() {
        let big = vec![b'x'; 2 << 20];
        let (_dir, result) = try_unpack(&[("big", Regular, &big, None)]);
        assert_eq!(result.unwrap_err(), UploadError::UnpackedTooLarge(1 << 20));
        let many: Vec<(String, tar::EntryType, &[u8], Option<&str>)> = (0..101)
            .map(|n| (format!("f{n}"), Regular, &b"x"[..], None))
            .collect();
        let many: Vec<(&str, tar::EntryType, &[u8], Option<&str>)> = many
            .iter()
            .map(|(p, k, d, l)| (p.as_str(), *k, *d, *l))
            .collect();
        let (_dir, result) = try_unpack(&many);
        assert_eq!(result.unwrap_err(), UploadError::TooManyEntries(100));
        let dir = tempfile::tempdir().unwrap();
        let err = unpack(&b"not gzip at all"[..], dir.path(), LIMITS).unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.to_string().starts_with("not a valid .tar.gz"), "{err}");
    }
}
