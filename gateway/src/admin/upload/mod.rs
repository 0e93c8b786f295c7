//! Build-context uploads (`.tar.gz`), unpacked safely into a private temporary folder.
//!
//! The body is streamed: chunks go through a bounded channel to a blocking thread that
//! decompresses and unpacks as they arrive, so an upload is never held whole in memory. Limits:
//! the compressed size (`max_upload_bytes`, checked on `Content-Length` and while reading), the
//! decompressed stream and every header in it ([`guard`]), the unpacked size and the number of
//! entries. Refused: absolute paths, `..`, links that point outside the folder, hard links,
//! devices and FIFOs.
//!
//! Nothing is ever created through a symbolic link: every entry's parent folders are walked
//! one by one from the upload folder, each must be a real folder (or is created as one), and
//! files are opened with `O_NOFOLLOW`. A link an archive made can exist, pointing inside; a
//! later entry cannot use it as a path.
//!
//! The unpacking thread owns the temporary folder: if the client goes away mid-upload, the
//! thread sees the end of its input, stops, and only then removes the folder, so no write can
//! land after the folder is gone.

pub mod guard;

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use tokio::sync::mpsc;

use guard::{TarGuard, Violation};

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

impl Limits {
    /// The most decompressed bytes an archive within these limits can need: its files, and a
    /// header block and padding per entry, plus the end-of-archive blocks.
    fn max_stream(&self) -> u64 {
        self.max_unpacked
            .saturating_add(
                self.max_entries
                    .saturating_mul(3 * 512 + guard::MAX_EXTENSION),
            )
            .saturating_add(64 * 1024)
    }
}

/// Why an upload was refused; each maps to a 4xx.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
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
    #[error("cannot unpack: {0}")]
    Io(String),
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
            UploadError::Io(_) => 500,
        }
    }
}

/// A `Read` over body chunks arriving through a channel (on a blocking thread).
struct ChannelReader {
    chunks: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// An unpacked upload: the build context is in `context`, inside a folder removed on drop.
#[derive(Debug)]
pub struct Upload {
    pub context: PathBuf,
    _dir: tempfile::TempDir,
}

/// Feeds body chunks to an unpacker running on a blocking thread.
pub struct Unpacker {
    sender: Option<mpsc::Sender<Bytes>>,
    task: tokio::task::JoinHandle<Result<Upload, UploadError>>,
    received: u64,
    limits: Limits,
}

impl Unpacker {
    /// Starts unpacking into a new private temporary folder.
    pub fn start(limits: Limits) -> Result<Unpacker, UploadError> {
        let dir = tempfile::Builder::new()
            .prefix("faaso-upload-")
            .tempdir()
            .map_err(|e| UploadError::Io(format!("cannot make a temporary folder: {e}")))?;
        let context = dir.path().join("context");
        std::fs::create_dir(&context).map_err(|e| UploadError::Io(e.to_string()))?;
        let (sender, chunks) = mpsc::channel::<Bytes>(16);
        let task = tokio::task::spawn_blocking(move || {
            let reader = ChannelReader {
                chunks,
                current: Bytes::new(),
            };
            // On every path out of here the folder is dropped on this thread, after the last
            // write.
            unpack(reader, &context, limits).map(|()| Upload { context, _dir: dir })
        });
        Ok(Unpacker {
            sender: Some(sender),
            task,
            received: 0,
            limits,
        })
    }

    /// Passes one chunk on; `Err` once the compressed limit is passed.
    pub async fn feed(&mut self, chunk: Bytes) -> Result<(), UploadError> {
        self.received += chunk.len() as u64;
        if self.received > self.limits.max_body {
            self.sender = None;
            return Err(UploadError::TooLarge(self.limits.max_body));
        }
        if let Some(sender) = &self.sender
            && sender.send(chunk).await.is_err()
        {
            // The unpacker stopped (it refused something): its error is reported by `finish`.
            self.sender = None;
        }
        Ok(())
    }

    /// Ends the input and waits for the unpacker's verdict.
    pub async fn finish(mut self) -> Result<Upload, UploadError> {
        self.sender = None;
        match self.task.await {
            Ok(result) => result,
            Err(err) => Err(UploadError::Incomplete(err.to_string())),
        }
    }

    /// Ends the input after a failure elsewhere and waits until the unpacker has stopped and
    /// removed its folder.
    pub async fn abandon(mut self) {
        self.sender = None;
        let _ = self.task.await;
    }
}

/// Unpacks a gzip-compressed tar from `input` into `dest` with every check.
pub fn unpack(input: impl Read, dest: &Path, limits: Limits) -> Result<(), UploadError> {
    let violation = Violation::default();
    let guarded = TarGuard::new(
        flate2::read::GzDecoder::new(input),
        limits.max_stream(),
        UploadError::UnpackedTooLarge(limits.max_unpacked),
        Violation::clone(&violation),
    );
    let result = unpack_entries(tar::Archive::new(guarded), dest, limits);
    // The guard's verdict is more precise than the tar reader's wrapped I/O error.
    match violation.borrow_mut().take() {
        Some(stopped) => Err(stopped),
        None => result,
    }
}

fn unpack_entries<R: Read>(
    mut archive: tar::Archive<R>,
    dest: &Path,
    limits: Limits,
) -> Result<(), UploadError> {
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
        let kind = entry.header().entry_type();
        let accepted = matches!(
            kind,
            tar::EntryType::Directory
                | tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::Symlink
        );
        if kind == tar::EntryType::Link {
            return Err(unsafe_entry("hard links are not accepted"));
        }
        if !accepted {
            return Err(unsafe_entry(&format!(
                "entry type {kind:?} is not accepted (devices, FIFOs)"
            )));
        }
        // Every folder on the way must be a real folder: never a link an earlier entry made.
        let parent = real_parent(dest, &relative).map_err(|reason| unsafe_entry(&reason))?;
        let Some(leaf) = relative.file_name() else {
            continue;
        };
        let target = parent.join(leaf);
        let existing = target.symlink_metadata().ok();
        if existing
            .as_ref()
            .is_some_and(|m| m.file_type().is_symlink())
        {
            return Err(unsafe_entry("it would be written through a symbolic link"));
        }
        match kind {
            tar::EntryType::Directory => {
                if existing.is_none() {
                    std::fs::create_dir(&target).map_err(|e| unsafe_entry(&e.to_string()))?;
                } else if !existing.is_some_and(|m| m.is_dir()) {
                    return Err(unsafe_entry("a file of that name exists"));
                }
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(|e| UploadError::Malformed(e.to_string()))?
                    .ok_or_else(|| unsafe_entry("symbolic link without a target"))?
                    .into_owned();
                let link_dir = relative.parent().unwrap_or(Path::new(""));
                if !faaso::store::files::link_stays_inside(link_dir, &link) {
                    return Err(unsafe_entry(&format!(
                        "symbolic link to {} leads out of the context",
                        link.display()
                    )));
                }
                if existing.is_some() {
                    return Err(unsafe_entry("an entry of that name exists"));
                }
                #[cfg(unix)]
                std::os::unix::fs::symlink(&link, &target)
                    .map_err(|e| unsafe_entry(&e.to_string()))?;
            }
            _ => {
                let size = entry
                    .header()
                    .size()
                    .map_err(|e| UploadError::Malformed(e.to_string()))?;
                if unpacked + size > limits.max_unpacked {
                    return Err(UploadError::UnpackedTooLarge(limits.max_unpacked));
                }
                let executable = entry
                    .header()
                    .mode()
                    .map(|m| m & 0o111 != 0)
                    .unwrap_or(false);
                let mut file = create_file(&target, if executable { 0o755 } else { 0o644 })
                    .map_err(|e| unsafe_entry(&e.to_string()))?;
                // Copy at most the declared size: a lying header cannot write more.
                let written = std::io::copy(&mut (&mut entry).take(size), &mut file)
                    .map_err(|e| UploadError::Malformed(e.to_string()))?;
                unpacked += written;
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

/// The folder an entry at `relative` goes into, walked from `dest` one component at a time:
/// missing folders are created, and anything that is not a real folder (a symbolic link, a
/// file) is refused.
fn real_parent(dest: &Path, relative: &Path) -> Result<PathBuf, String> {
    let mut current = dest.to_path_buf();
    let Some(parent) = relative.parent() else {
        return Ok(current);
    };
    for component in parent.components() {
        current.push(component);
        match current.symlink_metadata() {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(format!(
                    "its path goes through the symbolic link {}",
                    current.strip_prefix(dest).unwrap_or(&current).display()
                ));
            }
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "{} is not a folder",
                    current.strip_prefix(dest).unwrap_or(&current).display()
                ));
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&current).map_err(|e| e.to_string())?;
            }
            Err(err) => return Err(err.to_string()),
        }
    }
    Ok(current)
}

/// Creates a new file that is not a symbolic link (`O_NOFOLLOW`, `O_EXCL` after removing an
/// earlier file of that name).
fn create_file(path: &Path, mode: u32) -> std::io::Result<std::fs::File> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode).custom_flags(libc::O_NOFOLLOW);
    }
    options.open(path)
}

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
    fn chained_links_cannot_carry_entries_out() {
        // `up -> .` passes the text check, so does `up/up/up/esc -> ../../..` (three levels down,
        // three up); written through, `esc/...` would land three levels above the folder.
        let outside = format!("faaso-escape-{}", fastrand::u64(..));
        let dir_entry = format!("esc/tmp/{outside}/");
        let file_entry = format!("esc/tmp/{outside}/pwned");
        let (dir, result) = try_unpack(&[
            ("up", Symlink, b"", Some(".")),
            ("up/up/up/esc", Symlink, b"", Some("../../..")),
            (&dir_entry, Directory, b"", None),
            (&file_entry, Regular, b"x", None),
        ]);
        let err = result.unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.to_string().contains("symbolic link up"), "{err}");
        assert!(!Path::new("/tmp").join(&outside).exists());
        // Nothing was made through the link either.
        assert!(!dir.path().join("ctx/esc").exists());
        // A link whose own path goes through a link is refused the same way.
        let (_dir, result) = try_unpack(&[
            ("sub", Symlink, b"", Some(".")),
            ("sub/file", Regular, b"x", None),
        ]);
        assert!(
            result
                .unwrap_err()
                .to_string()
                .contains("symbolic link sub")
        );
        // A file may not replace a link (the write would follow it).
        let (_dir, result) = try_unpack(&[
            ("a", Regular, b"x", None),
            ("b", Symlink, b"", Some("a")),
            ("b", Regular, b"y", None),
        ]);
        assert!(
            result
                .unwrap_err()
                .to_string()
                .contains("through a symbolic link")
        );
    }

    #[test]
    fn declared_header_bombs_stop_at_their_header() {
        // A GNU long-name (`L`), long-link (`K`) or PAX (`x`) header declaring 1 GiB: refused
        // at the header, before the tar reader allocates anything for it.
        for kind in [b'L', b'K', b'x'] {
            let mut header = tar::Header::new_gnu();
            header.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
            header.set_entry_type(tar::EntryType::new(kind));
            header.set_size(1 << 30);
            header.set_cksum();
            let mut archive = header.as_bytes().to_vec();
            archive.extend(vec![b'a'; 64 * 1024]);
            let dir = tempfile::tempdir().unwrap();
            let err = unpack(gz(archive).as_slice(), dir.path(), LIMITS).unwrap_err();
            assert_eq!(err.status(), 400, "{err}");
            assert!(err.to_string().contains("extension header"), "{err}");
        }
    }

    #[test]
    fn the_decompressed_stream_is_capped() {
        // A folder entry carrying data: not counted as unpacked files, skipped by the tar
        // reader, and still stopped by the cap on the decompressed stream.
        let filler = vec![0u8; (LIMITS.max_stream() + 4096) as usize];
        let (_dir, result) = try_unpack(&[("dir/", Directory, &filler, None)]);
        assert_eq!(
            result.unwrap_err(),
            UploadError::UnpackedTooLarge(LIMITS.max_unpacked)
        );
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

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;

    /// One tar entry: kind, path segments, and a link target.
    #[derive(Debug, Clone)]
    struct Spec {
        kind: u8,
        path: Vec<String>,
        target: Vec<String>,
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("..".to_string()),
            Just(".".to_string()),
            Just("up".to_string()),
            Just("esc".to_string()),
            Just("d".to_string()),
            Just("tmp".to_string()),
            Just("PWNED".to_string()),
        ]
    }

    fn spec() -> impl Strategy<Value = Spec> {
        (
            prop_oneof![Just(b'0'), Just(b'5'), Just(b'2'), Just(b'1'), Just(b'3')],
            proptest::collection::vec(segment(), 1..6),
            proptest::collection::vec(segment(), 0..6),
        )
            .prop_map(|(kind, path, target)| Spec { kind, path, target })
    }

    fn archive(specs: &[Spec], absolute: bool) -> Vec<u8> {
        let mut tar = Vec::new();
        for (n, spec) in specs.iter().enumerate() {
            let mut path = spec.path.join("/");
            if absolute && n == 0 {
                path = format!("/{path}");
            }
            let mut header = tar::Header::new_gnu();
            let name = &mut header.as_old_mut().name;
            let len = path.len().min(99);
            name[..len].copy_from_slice(&path.as_bytes()[..len]);
            header.set_entry_type(tar::EntryType::new(spec.kind));
            let data: &[u8] = if spec.kind == b'0' { b"x" } else { b"" };
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            let target = spec.target.join("/");
            let link = &mut header.as_old_mut().linkname;
            let len = target.len().min(99);
            link[..len].copy_from_slice(&target.as_bytes()[..len]);
            header.set_cksum();
            tar.extend_from_slice(header.as_bytes());
            tar.extend_from_slice(data);
            tar.resize(tar.len().div_ceil(512) * 512, 0);
        }
        tar.resize(tar.len() + 1024, 0);
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&tar).unwrap();
        encoder.finish().unwrap()
    }

    /// Everything below `root`, without following links.
    fn tree(root: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(path.clone());
                }
                out.push(path);
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Random archives of files, folders, links and hard links, with `..`, `.`, absolute
        /// paths and link chains: whatever is accepted or refused, nothing is created outside
        /// the destination.
        #[test]
        fn nothing_is_created_outside(specs in proptest::collection::vec(spec(), 1..8), absolute in any::<bool>()) {
            let root = tempfile::tempdir().unwrap();
            let dest = root.path().join("a/b/ctx");
            std::fs::create_dir_all(&dest).unwrap();
            let limits = Limits { max_body: 1 << 20, max_unpacked: 1 << 20, max_entries: 100 };
            let _ = unpack(archive(&specs, absolute).as_slice(), &dest, limits);
            let outside: Vec<PathBuf> = tree(root.path())
                .into_iter()
                .filter(|p| !p.starts_with(&dest) && *p != root.path().join("a") && *p != root.path().join("a/b"))
                .collect();
            prop_assert!(outside.is_empty(), "created outside: {:?}", outside);
            // An escape through `..` beyond the temporary root would land in /tmp or /.
            for top in ["/tmp/PWNED", "/PWNED", "/tmp/esc", "/tmp/up"] {
                prop_assert!(std::fs::symlink_metadata(top).is_err(), "{} exists", top);
            }
        }
    }
}
