//! Runtimes: the built-in ones embedded in the binary at compile time (from `runtimes/`), or a
//! folder given as a path, which works the same way.
//!
//! A runtime folder holds `README.md` (its first line describes it), `options.yml` (the options
//! it accepts, with types and defaults), build files (`Dockerfile.hbs`, ...) and `template/`,
//! which `faaso new` copies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/runtimes.rs"));
}

/// Files of a runtime that describe it rather than go into a build context.
const META_FILES: &[&str] = &["README.md", "options.yml"];
/// The folder `faaso new` copies.
const TEMPLATE_DIR: &str = "template/";

/// A runtime's files, by path relative to its folder.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// The name (built-in) or the path as given.
    pub name: String,
    /// Where it comes from, for messages.
    pub origin: Origin,
    files: BTreeMap<String, Vec<u8>>,
}

/// Where a runtime comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    BuiltIn,
    Folder(PathBuf),
}

/// Why a runtime cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "unknown runtime {name:?} (built-in runtimes: {known}; or give a path to a runtime folder)"
    )]
    Unknown { name: String, known: String },
    #[error("runtime folder {path}: {message}")]
    Folder { path: PathBuf, message: String },
}

/// The names of the built-in runtimes.
pub fn builtin_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = embedded::FILES
        .iter()
        .filter_map(|(path, _)| path.split_once('/').map(|(name, _)| name))
        .collect();
    names.dedup();
    names
}

/// Whether a runtime reference is a path rather than a built-in name.
pub fn is_path(reference: &str) -> bool {
    reference.contains('/') || reference.starts_with('.')
}

impl Runtime {
    /// A built-in runtime by name.
    pub fn builtin(name: &str) -> Option<Runtime> {
        let prefix = format!("{name}/");
        let files: BTreeMap<String, Vec<u8>> = embedded::FILES
            .iter()
            .filter_map(|(path, data)| {
                path.strip_prefix(&prefix)
                    .map(|rest| (rest.to_string(), data.to_vec()))
            })
            .collect();
        (!files.is_empty()).then(|| Runtime {
            name: name.to_string(),
            origin: Origin::BuiltIn,
            files,
        })
    }

    /// A runtime by reference: a built-in name, or a path (relative to `base`).
    pub fn resolve(reference: &str, base: &Path) -> Result<Runtime, RuntimeError> {
        if is_path(reference) {
            let path = Path::new(reference);
            // `./x` from `.` stays `./x` in messages (not `././x`).
            let path = if base == Path::new(".") || path.is_absolute() {
                path.to_path_buf()
            } else {
                base.join(path)
            };
            return Runtime::from_folder(&path, reference);
        }
        Runtime::builtin(reference).ok_or_else(|| RuntimeError::Unknown {
            name: reference.to_string(),
            known: builtin_names().join(", "),
        })
    }

    /// Reads a runtime folder. Symbolic links are refused: a runtime is copied into build
    /// contexts and must not pull in files from elsewhere.
    pub fn from_folder(path: &Path, name: &str) -> Result<Runtime, RuntimeError> {
        let folder_error = |message: String| RuntimeError::Folder {
            path: path.to_path_buf(),
            message,
        };
        if !path.is_dir() {
            return Err(folder_error("no such folder".to_string()));
        }
        let mut files = BTreeMap::new();
        read_folder(path, path, &mut files).map_err(folder_error)?;
        if !files.contains_key("Dockerfile") && !files.contains_key("Dockerfile.hbs") {
            return Err(folder_error(
                "no Dockerfile or Dockerfile.hbs: not a runtime".to_string(),
            ));
        }
        Ok(Runtime {
            name: name.to_string(),
            origin: Origin::Folder(path.to_path_buf()),
            files,
        })
    }

    /// The first line of its README, without Markdown markup: the description for `--list`.
    pub fn description(&self) -> String {
        self.files
            .get("README.md")
            .and_then(|readme| std::str::from_utf8(readme).ok())
            .and_then(|text| text.lines().find(|l| !l.trim().is_empty()))
            .map(|line| line.trim_start_matches('#').trim().to_string())
            .unwrap_or_default()
    }

    /// The files `faaso new` copies: `template/` with the prefix removed.
    pub fn template_files(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.files.iter().filter_map(|(path, data)| {
            path.strip_prefix(TEMPLATE_DIR)
                .map(|rest| (rest, data.as_slice()))
        })
    }

    /// The files that go into a build context: everything but `template/` and the metadata.
    pub fn build_files(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.files
            .iter()
            .filter(|(path, _)| {
                !path.starts_with(TEMPLATE_DIR) && !META_FILES.contains(&path.as_str())
            })
            .map(|(path, data)| (path.as_str(), data.as_slice()))
    }

    /// The content of `options.yml`, if the runtime has one.
    pub fn options_schema(&self) -> Option<&[u8]> {
        self.files.get("options.yml").map(Vec::as_slice)
    }
}

fn read_folder(
    root: &Path,
    dir: &Path,
    files: &mut BTreeMap<String, Vec<u8>>,
) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let relative = path
            .strip_prefix(root)
            .map_err(|_| format!("{} is outside the folder", path.display()))?
            .to_string_lossy()
            .replace('\\', "/");
        if kind.is_symlink() {
            return Err(format!(
                "{relative} is a symbolic link; runtimes must hold plain files"
            ));
        } else if kind.is_dir() {
            read_folder(root, &path, files)?;
        } else if kind.is_file() {
            let data = std::fs::read(&path).map_err(|e| format!("{relative}: {e}"))?;
            files.insert(relative, data);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_builtins_with_descriptions() {
        assert_eq!(builtin_names(), ["axum", "binary", "express", "flask"]);
        for name in builtin_names() {
            let runtime = Runtime::builtin(name).unwrap();
            assert!(
                !runtime.description().is_empty(),
                "{name} has no description"
            );
            assert!(
                runtime.template_files().any(|(p, _)| p == "funko.yml.hbs"),
                "{name}"
            );
            assert!(
                runtime.build_files().any(|(p, _)| p == "Dockerfile.hbs"),
                "{name}"
            );
            assert!(
                !runtime
                    .build_files()
                    .any(|(p, _)| p.starts_with("template/") || p == "README.md")
            );
            assert!(
                runtime.options_schema().is_some(),
                "{name} has no options.yml"
            );
        }
        assert!(Runtime::builtin("cobol").is_none());
    }

    #[test]
    fn resolve_by_name_or_path() {
        let err = Runtime::resolve("cobol", Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown runtime \"cobol\"") && err.contains("flask"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let err = Runtime::resolve("./nope", dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no such folder"), "{err}");
        std::fs::create_dir(dir.path().join("rt")).unwrap();
        std::fs::write(dir.path().join("rt/README.md"), "# Mine: a test runtime\n").unwrap();
        let err = Runtime::resolve("./rt", dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a runtime"), "{err}");
        std::fs::write(dir.path().join("rt/Dockerfile.hbs"), "FROM scratch\n").unwrap();
        let runtime = Runtime::resolve("./rt", dir.path()).unwrap();
        assert_eq!(runtime.description(), "Mine: a test runtime");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc/passwd", dir.path().join("rt/passwd")).unwrap();
            let err = Runtime::resolve("./rt", dir.path())
                .unwrap_err()
                .to_string();
            assert!(err.contains("symbolic link"), "{err}");
        }
    }
}
