//! Build contexts: the runtime's build files (templates rendered), then the funko's own files on
//! top, as one in-memory tree that becomes a tar for Docker or a folder for `faaso export`.
//!
//! The funko's `.dockerignore` is honoured. Symbolic links are kept when they point inside the
//! folder and refused when they lead out of it: a build must not read files from elsewhere.
//! Files from a folder are read when the tar is written, not when the tree is made, so a large
//! context is never held in memory ([`BuildContext::tar_stream`] writes it as it goes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::build::dockerignore::Rules;
use crate::build::options::{OptionType, OptionsError, Schema};
use crate::build::render::{RenderError, Renderer};
use crate::build::runtime::{Runtime, RuntimeError};
use crate::funko::{FUNKO_YML, FunkoSpec};

/// One entry of a build context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A file made in memory (a rendered template).
    File {
        data: Vec<u8>,
        mode: u32,
    },
    /// A file of a folder, read when it is written out.
    OnDisk {
        path: PathBuf,
        mode: u32,
    },
    Symlink {
        target: PathBuf,
    },
}

/// A complete build context.
#[derive(Debug, Clone, Default)]
pub struct BuildContext {
    entries: BTreeMap<String, Entry>,
    /// Files that runtime options declare as static executables: (folder, option, file).
    executables: Vec<(PathBuf, String, String)>,
}

/// Why a build context cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Options(#[from] OptionsError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Dockerignore(#[from] crate::build::dockerignore::PatternError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: symbolic link to {target} leads out of the funko folder")]
    EscapingLink { path: PathBuf, target: PathBuf },
    #[error("{path}: already exists (export writes a new folder)")]
    DestinationExists { path: PathBuf },
    #[error("{path} (option `{option}`) {reason}")]
    Executable {
        path: PathBuf,
        option: String,
        reason: String,
    },
    #[error("{file}: base_image: {message}")]
    BaseImage { file: PathBuf, message: String },
    #[error(
        "the build context has no Dockerfile (set `runtime:` in funko.yml, or add a Dockerfile)"
    )]
    NoDockerfile,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ContextError + '_ {
    move |source| ContextError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl BuildContext {
    /// Assembles the context of a funko: its runtime (if any), then its files.
    pub fn assemble(spec: &FunkoSpec) -> Result<BuildContext, ContextError> {
        let mut context = BuildContext::default();
        if spec.runtime.is_none() && spec.base_image != Default::default() {
            return Err(ContextError::BaseImage {
                file: spec.folder.join(FUNKO_YML),
                message: "needs a runtime: a funko's own Dockerfile names its base images in FROM"
                    .to_string(),
            });
        }

        if let Some(reference) = &spec.runtime {
            let runtime = Runtime::resolve(reference, &spec.folder)?;
            let (data, schema) = template_data(spec, &runtime)?;
            context.executables = schema
                .iter()
                .flat_map(|schema| schema.iter())
                .filter(|(_, decl)| decl.kind == OptionType::StaticExecutable)
                .filter_map(|(name, _)| {
                    let file = data["options"][name].as_str()?;
                    Some((spec.folder.clone(), name.clone(), file.to_string()))
                })
                .collect();
            let renderer = Renderer::new();
            for (path, content) in runtime.build_files() {
                let (path, content) = renderer.file(path, content, &data)?;
                context.entries.insert(
                    path,
                    Entry::File {
                        data: content,
                        mode: 0o644,
                    },
                );
            }
        }
        context.add_folder(&spec.folder)?;
        if !context.entries.contains_key("Dockerfile") {
            return Err(ContextError::NoDockerfile);
        }
        let mut labels: Vec<(String, String)> = spec
            .settings
            .to_labels()
            .into_iter()
            .map(|(label, value)| (label.to_string(), value))
            .collect();
        labels.extend(spec.triggers.iter().flat_map(|t| t.to_labels()));
        context.add_setting_labels(&labels)?;
        Ok(context)
    }

    /// Appends the funko's settings (`scaling:`, `limits:`, `async:`) and `triggers:` to the
    /// Dockerfile as `LABEL`s of the final image, so that a local and an uploaded build label
    /// the image alike, and `docker inspect` shows where they came from.
    fn add_setting_labels(&mut self, labels: &[(String, String)]) -> Result<(), ContextError> {
        if labels.is_empty() {
            return Ok(());
        }
        let mut data = match self.entries.get("Dockerfile") {
            Some(Entry::File { data, .. }) => data.clone(),
            Some(Entry::OnDisk { path, .. }) => std::fs::read(path).map_err(io_error(path))?,
            _ => return Err(ContextError::NoDockerfile),
        };
        if !data.ends_with(b"\n") {
            data.push(b'\n');
        }
        data.extend_from_slice(b"# settings and triggers from funko.yml\nLABEL");
        for (label, value) in labels {
            data.extend_from_slice(format!(" {label}=\"{}\"", label_text(value)).as_bytes());
        }
        data.push(b'\n');
        self.entries
            .insert("Dockerfile".to_string(), Entry::File { data, mode: 0o644 });
        Ok(())
    }

    /// Checks what must hold for the image to start, before anything is built: files that the
    /// runtime's options declare as static executables are present, executable and static.
    /// (Not checked on export: an exported context may be completed elsewhere.)
    pub fn check_runnable(&self) -> Result<(), ContextError> {
        for (folder, option, file) in &self.executables {
            self.check_static_executable(folder, option, file)?;
        }
        Ok(())
    }

    /// Refuses a build whose `option` names a file that is missing, not executable, or cannot
    /// run without a C library (`FROM scratch`).
    fn check_static_executable(
        &self,
        folder: &Path,
        option: &str,
        file: &str,
    ) -> Result<(), ContextError> {
        let path = folder.join(file);
        let refuse = |reason: String| ContextError::Executable {
            path: path.clone(),
            option: option.to_string(),
            reason,
        };
        let mode = match self.entries.get(file) {
            Some(Entry::OnDisk { mode, .. } | Entry::File { mode, .. }) => *mode,
            Some(Entry::Symlink { .. }) => 0o755,
            None => {
                return Err(refuse(
                    "does not exist (or .dockerignore leaves it out)".into(),
                ));
            }
        };
        if mode & 0o111 == 0 {
            return Err(refuse(format!(
                "is not executable (mode {mode:o}; chmod +x it)"
            )));
        }
        let bytes = std::fs::read(&path).map_err(io_error(&path))?;
        crate::build::elf::check_standalone(&bytes).map_err(|why| refuse(why.to_string()))
    }

    /// A tree of plain files (path, content), for example a rendered template.
    pub fn from_files(files: impl IntoIterator<Item = (String, Vec<u8>)>) -> BuildContext {
        let entries = files
            .into_iter()
            .map(|(path, data)| (path, Entry::File { data, mode: 0o644 }))
            .collect();
        BuildContext {
            entries,
            executables: Vec::new(),
        }
    }

    /// A folder that is itself a complete build context (an uploaded one, say).
    pub fn from_folder(folder: &Path) -> Result<BuildContext, ContextError> {
        let mut context = BuildContext::default();
        context.add_folder(folder)?;
        if !context.entries.contains_key("Dockerfile") {
            return Err(ContextError::NoDockerfile);
        }
        Ok(context)
    }

    /// Adds the files of `folder` (honouring its `.dockerignore`) on top of what is there.
    fn add_folder(&mut self, folder: &Path) -> Result<(), ContextError> {
        let ignore_path = folder.join(".dockerignore");
        let rules = match std::fs::read_to_string(&ignore_path) {
            Ok(text) => Rules::parse(&text)?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Rules::default(),
            Err(source) => {
                return Err(ContextError::Io {
                    path: ignore_path,
                    source,
                });
            }
        };
        let root = folder.canonicalize().map_err(io_error(folder))?;
        self.walk(&root, &root, &rules)
    }

    fn walk(&mut self, root: &Path, dir: &Path, rules: &Rules) -> Result<(), ContextError> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(io_error(dir))?
            .collect::<Result<_, _>>()
            .map_err(io_error(dir))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let relative = relative_path(root, &path);
            let metadata = std::fs::symlink_metadata(&path).map_err(io_error(&path))?;
            let excluded = rules.excludes(&relative);
            if metadata.is_dir() {
                if !excluded || rules.may_reinclude_below(&relative) {
                    self.walk(root, &path, rules)?;
                }
                continue;
            }
            if excluded {
                continue;
            }
            if metadata.file_type().is_symlink() {
                let target = std::fs::read_link(&path).map_err(io_error(&path))?;
                let link_dir = path
                    .parent()
                    .and_then(|dir| dir.strip_prefix(root).ok())
                    .unwrap_or(Path::new(""));
                if !crate::store::files::link_stays_inside(link_dir, &target) {
                    return Err(ContextError::EscapingLink { path, target });
                }
                self.entries.insert(relative, Entry::Symlink { target });
            } else if metadata.is_file() {
                let mode = file_mode(&metadata);
                self.entries.insert(relative, Entry::OnDisk { path, mode });
            }
        }
        Ok(())
    }

    /// The paths in the context, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The content of a file in the context.
    pub fn file(&self, path: &str) -> Option<std::borrow::Cow<'_, [u8]>> {
        match self.entries.get(path)? {
            Entry::File { data, .. } => Some(data.as_slice().into()),
            Entry::OnDisk { path, .. } => std::fs::read(path).ok().map(Into::into),
            Entry::Symlink { .. } => None,
        }
    }

    /// The context as an uncompressed tar, deterministic (sorted, fixed times and owners).
    pub fn to_tar(&self) -> Result<Vec<u8>, std::io::Error> {
        let mut tar = Vec::new();
        self.write_tar(&mut tar)?;
        Ok(tar)
    }

    /// Writes the context as an uncompressed tar to `out`, reading files as it goes.
    pub fn write_tar(&self, out: impl std::io::Write) -> Result<(), std::io::Error> {
        let mut builder = tar::Builder::new(out);
        for (path, entry) in &self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            match entry {
                Entry::File { data, mode } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_size(data.len() as u64);
                    builder.append_data(&mut header, path, data.as_slice())?;
                }
                Entry::OnDisk { path: source, mode } => {
                    let file = std::fs::File::open(source)?;
                    let size = file.metadata()?.len();
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_size(size);
                    // Exactly the size in the header, even if the file changes meanwhile.
                    use std::io::Read;
                    let mut reader = file.take(size).chain(std::io::repeat(0)).take(size);
                    builder.append_data(&mut header, path, &mut reader)?;
                }
                Entry::Symlink { target } => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    builder.append_link(&mut header, path, target)?;
                }
            }
        }
        builder.into_inner()?.flush()
    }

    /// The context as a stream of tar chunks, written on a blocking thread as the stream is
    /// read (at most a few chunks ahead). `keep` lives until the tar is written: the folder the
    /// files come from, say.
    pub fn tar_stream(
        self,
        keep: impl Send + 'static,
    ) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
        tokio::task::spawn_blocking(move || {
            let _keep = keep;
            let mut writer = ChunkWriter {
                sender: sender.clone(),
                chunk: Vec::with_capacity(CHUNK),
            };
            if let Err(err) = self.write_tar(&mut writer) {
                let _ = sender.blocking_send(Err(err));
            }
        });
        futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
    }

    /// Writes the tree as a new folder `dest` (a build context for `faaso export`, a new funko
    /// for `faaso new`). It is written next to `dest` first and moved into place at the end, so
    /// a failure leaves nothing half-written.
    pub fn write_to(&self, dest: &Path) -> Result<(), ContextError> {
        if dest.exists() || dest.symlink_metadata().is_ok() {
            return Err(ContextError::DestinationExists {
                path: dest.to_path_buf(),
            });
        }
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let staging = tempfile::Builder::new()
            .prefix(".faaso-export-")
            .tempdir_in(&parent)
            .map_err(io_error(&parent))?;
        for (path, entry) in &self.entries {
            let target = staging.path().join(path);
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir).map_err(io_error(dir))?;
            }
            match entry {
                Entry::File { data, mode } => {
                    std::fs::write(&target, data).map_err(io_error(&target))?;
                    crate::store::files::set_mode(&target, *mode).map_err(io_error(&target))?;
                }
                Entry::OnDisk { path: source, mode } => {
                    std::fs::copy(source, &target).map_err(io_error(&target))?;
                    crate::store::files::set_mode(&target, *mode).map_err(io_error(&target))?;
                }
                Entry::Symlink { target: link } => {
                    #[cfg(unix)]
                    std::os::unix::fs::symlink(link, &target).map_err(io_error(&target))?;
                    #[cfg(not(unix))]
                    let _ = link;
                }
            }
        }
        let staged = staging.keep();
        std::fs::rename(&staged, dest).map_err(|source| {
            let _ = std::fs::remove_dir_all(&staged);
            ContextError::Io {
                path: dest.to_path_buf(),
                source,
            }
        })
    }
}

/// `{name, runtime, options, base}` with the options checked and completed from
/// `options.yml`, and the base images chosen for the runtime's stages ([`crate::base_image`]).
/// The data templates are rendered with, and the runtime's option schema (if it has one).
fn template_data(
    spec: &FunkoSpec,
    runtime: &Runtime,
) -> Result<(Value, Option<Schema>), ContextError> {
    let file = spec.folder.join(FUNKO_YML);
    let schema = runtime
        .options_schema()
        .map(|text| Schema::parse(&runtime.name, text))
        .transpose()?;
    let options = match &schema {
        Some(schema) => Value::Object(schema.apply(&spec.options, &file, &runtime.name)?),
        None => serde_json::to_value(&spec.options).unwrap_or(Value::Null),
    };
    let base = spec
        .base_image
        .resolve(&runtime.name, |var| std::env::var(var).ok())
        .map_err(|message| ContextError::BaseImage {
            file: file.clone(),
            message,
        })?;
    let data = json!({
        "name": spec.name,
        "runtime": runtime.name,
        "options": options,
        "base": base.template_value(),
    });
    Ok((data, schema))
}

fn relative_path(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Tar chunks sent at a time.
const CHUNK: usize = 64 * 1024;

/// An `io::Write` that sends what is written as chunks through a channel.
struct ChunkWriter {
    sender: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
    chunk: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        self.sender
            .blocking_send(Ok(chunk.into()))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the reader left"))
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let take = buf.len().min(CHUNK - self.chunk.len());
        self.chunk.extend_from_slice(&buf[..take]);
        if self.chunk.len() >= CHUNK {
            self.send()?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

#[cfg(unix)]
fn file_mode(metadata: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    // Only the executable bit matters to a build; owners and groups do not travel.
    if metadata.permissions().mode() & 0o111 != 0 {
        0o755
    } else {
        0o644
    }
}

#[cfg(not(unix))]
fn file_mode(_: &std::fs::Metadata) -> u32 {
    0o644
}

/// A label value inside a Dockerfile's double quotes: `\`, `"` and `$` (which `LABEL`
/// would expand) are escaped.
fn label_text(value: &str) -> String {
    let mut text = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | '"' | '$') {
            text.push('\\');
        }
        text.push(c);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn funko(dir: &Path, yml: &str) -> FunkoSpec {
        std::fs::write(dir.join("funko.yml"), yml).unwrap();
        FunkoSpec::load(dir).unwrap()
    }

    #[test]
    fn settings_become_labels_of_the_final_image() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\nCOPY x /x").unwrap();
        let spec = funko(
            dir.path(),
            "name: hello\nscaling: {min: 0, max: 2}\nlimits: {timeout: 5s}\n",
        );
        let context = BuildContext::assemble(&spec).unwrap();
        let dockerfile = String::from_utf8(context.file("Dockerfile").unwrap().to_vec()).unwrap();
        assert_eq!(
            dockerfile,
            "FROM scratch\nCOPY x /x\n# settings and triggers from funko.yml\n\
             LABEL faaso.scale.min=\"0\" faaso.scale.max=\"2\" faaso.limits.timeout=\"5s\"\n"
        );
        let scheduled = funko(
            dir.path(),
            r#"name: hello
async: {retries: 1}
triggers:
  - cron: '0 * * * *'
    body: '{"a": "$HOME\"}'
"#,
        );
        let context = BuildContext::assemble(&scheduled).unwrap();
        let dockerfile = String::from_utf8(context.file("Dockerfile").unwrap().to_vec()).unwrap();
        let expected = r#"LABEL faaso.async.retries="1" faaso.cron.t1.schedule="0 * * * *" faaso.cron.t1.path="/" faaso.cron.t1.method="POST" faaso.cron.t1.body="{\"a\": \"\$HOME\\\"}""#;
        assert!(
            dockerfile.ends_with(&format!("{expected}\n")),
            "{dockerfile}"
        );
        let plain = funko(dir.path(), "name: hello\n");
        let context = BuildContext::assemble(&plain).unwrap();
        assert_eq!(
            &*context.file("Dockerfile").unwrap(),
            b"FROM scratch\nCOPY x /x"
        );
    }

    #[test]
    fn runtime_then_funko_files_with_dockerignore() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("funko.py"), "app = 1\n").unwrap();
        std::fs::write(dir.path().join("requirements.txt"), "requests\n").unwrap();
        std::fs::write(dir.path().join(".dockerignore"), "*.log\n").unwrap();
        std::fs::write(dir.path().join("debug.log"), "noise").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/x.txt"), "x").unwrap();
        let spec = funko(
            dir.path(),
            "name: hello\nruntime: flask\noptions:\n  workers: 3\n",
        );
        let context = BuildContext::assemble(&spec).unwrap();
        let paths: Vec<&str> = context.paths().collect();
        assert!(
            paths.contains(&"Dockerfile") && paths.contains(&"faaso_app.py"),
            "{paths:?}"
        );
        assert!(paths.contains(&"sub/x.txt"));
        assert!(!paths.contains(&"debug.log"));
        assert!(
            !paths
                .iter()
                .any(|p| p.starts_with("template/") || *p == "README.md" || p.ends_with(".hbs"))
        );
        let dockerfile = String::from_utf8(context.file("Dockerfile").unwrap().to_vec()).unwrap();
        assert!(dockerfile.contains("\"--workers\", \"3\""), "{dockerfile}");
        assert_eq!(
            context.file("requirements.txt").unwrap().as_ref(),
            b"requests\n",
            "the funko's file wins"
        );
        let tar = context.to_tar().unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        assert_eq!(archive.entries().unwrap().count(), paths.len());
    }

    #[test]
    fn links_out_of_the_folder_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(dir.path().join("a.txt"), "a").unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("a.txt", dir.path().join("inside")).unwrap();
            let spec = funko(dir.path(), "name: linky\n");
            assert!(BuildContext::assemble(&spec).is_ok());
            std::os::unix::fs::symlink("../../etc/passwd", dir.path().join("outside")).unwrap();
            let err = BuildContext::assemble(&spec).unwrap_err().to_string();
            assert!(
                err.contains("outside: symbolic link to ../../etc/passwd leads out"),
                "{err}"
            );
        }
    }

    #[test]
    fn export_refuses_an_existing_destination_and_writes_whole() {
        let dir = tempfile::tempdir().unwrap();
        let spec = funko(dir.path(), "name: bin\nruntime: binary\n");
        let context = BuildContext::assemble(&spec).unwrap();
        let out = tempfile::tempdir().unwrap();
        let err = context.write_to(out.path()).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        let dest = out.path().join("ctx");
        context.write_to(&dest).unwrap();
        assert!(dest.join("Dockerfile").is_file());
        assert_eq!(
            std::fs::read_dir(out.path()).unwrap().count(),
            1,
            "no staging folder left"
        );
    }

    #[test]
    fn no_runtime_and_no_dockerfile() {
        let dir = tempfile::tempdir().unwrap();
        let spec = funko(dir.path(), "name: plain\n");
        let err = BuildContext::assemble(&spec).unwrap_err().to_string();
        assert!(err.contains("no Dockerfile"), "{err}");
    }

    #[tokio::test]
    async fn a_folder_streams_the_same_tar_in_chunks() {
        use futures_util::StreamExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let big: Vec<u8> = (0..300_000u32).map(|n| (n % 251) as u8).collect();
        std::fs::write(dir.path().join("data/big.bin"), &big).unwrap();
        let context = BuildContext::from_folder(dir.path()).unwrap();
        let whole = context.to_tar().unwrap();
        let mut stream = std::pin::pin!(context.tar_stream(dir));
        let mut streamed = Vec::new();
        let mut chunks = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            assert!(chunk.len() <= CHUNK);
            streamed.extend_from_slice(&chunk);
            chunks += 1;
        }
        assert_eq!(streamed, whole);
        assert!(chunks >= 5, "{chunks} chunks");
    }
}
