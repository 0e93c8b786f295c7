//! The funko folder and its `funko.yml`: loading, validation, and errors that point at the
//! file, line and column at fault.
//!
//! ```yaml
//! name: hello
//! runtime: flask          # a built-in runtime, or a path; absent = the folder is a build context
//! options: {}             # runtime-defined, checked against the runtime's options.yml
//! scaling: {min: 0, max: 3}           # per-funko settings, written as image labels
//! limits: {timeout: 30s, max_body: 1MiB}
//! async: {retries: 3, max_inflight: 10}
//! triggers: [{cron: "*/5 * * * *", path: /report}]
//! access: private         # requests need one of the funko's keys (`faaso key add`)
//! domains: [api.example.com]          # host names routed to the funko with the whole path
//! ```
//!
//! `scaling:`, `limits:`, `async:`, `access:` and `domains:` are described in
//! [`crate::settings`], `triggers:` in [`crate::triggers`].

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::conventions::{InvalidName, validate_name};

/// The file every funko folder has.
pub const FUNKO_YML: &str = "funko.yml";

/// A loaded and validated `funko.yml`.
#[derive(Debug, Clone, PartialEq)]
pub struct FunkoSpec {
    /// The folder holding `funko.yml`.
    pub folder: PathBuf,
    pub name: String,
    /// The runtime as written: a built-in name or a path (relative to the folder).
    pub runtime: Option<String>,
    /// The runtime options, as a mapping (empty when absent).
    pub options: serde_yaml::Mapping,
    /// `scaling:`, `limits:` and `async:`, which `faaso build` writes as image labels.
    pub settings: crate::settings::Settings,
    /// `triggers:`, also written as image labels.
    pub triggers: Vec<crate::triggers::Trigger>,
    /// `base_image:`, the images the runtime's stages start from (empty: the runtime's own).
    pub base_image: crate::base_image::BaseImages,
}

/// Why a funko folder cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FunkoError {
    #[error("{path}: no such folder")]
    MissingFolder { path: PathBuf },
    #[error("{path}: not a folder")]
    NotAFolder { path: PathBuf },
    #[error("{path}: not found (a funko folder needs a funko.yml; `faaso new` makes one)")]
    NoFunkoYml { path: PathBuf },
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Yaml {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {source}")]
    Name {
        path: PathBuf,
        #[source]
        source: InvalidName,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: String,
    #[serde(default)]
    runtime: Option<String>,
    #[serde(default)]
    options: Option<serde_yaml::Value>,
    #[serde(default)]
    scaling: Option<serde_yaml::Value>,
    #[serde(default)]
    limits: Option<serde_yaml::Value>,
    #[serde(default, rename = "async")]
    async_calls: Option<serde_yaml::Value>,
    #[serde(default)]
    triggers: Option<serde_yaml::Value>,
    #[serde(default)]
    access: Option<serde_yaml::Value>,
    #[serde(default)]
    domains: Option<serde_yaml::Value>,
    #[serde(default)]
    base_image: Option<serde_yaml::Value>,
}

impl FunkoSpec {
    /// Loads `<folder>/funko.yml`.
    pub fn load(folder: &Path) -> Result<FunkoSpec, FunkoError> {
        if !folder.exists() {
            return Err(FunkoError::MissingFolder {
                path: folder.to_path_buf(),
            });
        }
        if !folder.is_dir() {
            return Err(FunkoError::NotAFolder {
                path: folder.to_path_buf(),
            });
        }
        let path = folder.join(FUNKO_YML);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(FunkoError::NoFunkoYml { path });
            }
            Err(source) => return Err(FunkoError::Read { path, source }),
        };
        FunkoSpec::parse(&text, folder, &path)
    }

    /// Parses `funko.yml` text; `path` is only used in messages.
    pub fn parse(text: &str, folder: &Path, path: &Path) -> Result<FunkoSpec, FunkoError> {
        let raw: RawSpec = serde_yaml::from_str(text).map_err(|err| {
            let (line, column) = err
                .location()
                .map_or((1, 1), |loc| (loc.line(), loc.column()));
            // serde_yaml appends " at line L column C"; the prefix already says it.
            let message = err.to_string();
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_string();
            FunkoError::Yaml {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
        })?;
        validate_name(&raw.name).map_err(|source| FunkoError::Name {
            path: path.to_path_buf(),
            source,
        })?;
        let options = match raw.options {
            None | Some(serde_yaml::Value::Null) => serde_yaml::Mapping::new(),
            Some(serde_yaml::Value::Mapping(mapping)) => mapping,
            Some(_) => {
                return Err(FunkoError::Yaml {
                    path: path.to_path_buf(),
                    line: line_of(text, "options"),
                    column: 1,
                    message: "options must be a mapping of option names to values".to_string(),
                });
            }
        };
        let runtime = raw.runtime.filter(|r| !r.trim().is_empty());
        let mut sections = Vec::new();
        for (key, value) in [
            ("scaling", &raw.scaling),
            ("limits", &raw.limits),
            ("async", &raw.async_calls),
        ] {
            sections.push(match value {
                None | Some(serde_yaml::Value::Null) => (key, None),
                Some(serde_yaml::Value::Mapping(mapping)) => (key, Some(mapping)),
                Some(_) => {
                    return Err(FunkoError::Yaml {
                        path: path.to_path_buf(),
                        line: line_of(text, key),
                        column: 1,
                        message: format!("{key} must be a mapping of settings to values"),
                    });
                }
            });
        }
        let mut settings = crate::settings::Settings::from_sections(&sections).map_err(|err| {
            let section = err.name.split('.').next().unwrap_or_default();
            FunkoError::Yaml {
                path: path.to_path_buf(),
                line: line_of(text, section),
                column: 1,
                message: err.to_string(),
            }
        })?;
        let top_level_error = |key: &str, message: String| FunkoError::Yaml {
            path: path.to_path_buf(),
            line: line_of(text, key),
            column: 1,
            message: format!("{key}: {message}"),
        };
        match &raw.access {
            None | Some(serde_yaml::Value::Null) => {}
            Some(serde_yaml::Value::String(access)) => settings
                .set(crate::settings::ACCESS, access)
                .map_err(|m| top_level_error("access", m))?,
            Some(_) => {
                return Err(top_level_error(
                    "access",
                    "expected private or public".to_string(),
                ));
            }
        }
        match &raw.domains {
            None | Some(serde_yaml::Value::Null) => {}
            Some(serde_yaml::Value::Sequence(list)) => {
                let names: Option<Vec<&str>> = list.iter().map(|d| d.as_str()).collect();
                let names = names.ok_or_else(|| {
                    top_level_error("domains", "expected a list of host names".to_string())
                })?;
                if names.iter().any(|n| n.contains(',')) {
                    return Err(top_level_error(
                        "domains",
                        "a host name has no comma (one name per list item)".to_string(),
                    ));
                }
                settings
                    .set(crate::settings::DOMAINS, &names.join(","))
                    .map_err(|m| top_level_error("domains", m))?;
            }
            Some(_) => {
                return Err(top_level_error(
                    "domains",
                    "expected a list of host names, like [api.example.com]".to_string(),
                ));
            }
        }
        let triggers =
            crate::triggers::Trigger::from_yaml(raw.triggers.as_ref()).map_err(|err| {
                FunkoError::Yaml {
                    path: path.to_path_buf(),
                    line: line_of(text, "triggers"),
                    column: 1,
                    message: err.to_string(),
                }
            })?;
        let base_image = crate::base_image::BaseImages::from_yaml(raw.base_image.as_ref())
            .map_err(|m| top_level_error("base_image", m))?;
        Ok(FunkoSpec {
            folder: folder.to_path_buf(),
            name: raw.name,
            runtime,
            options,
            settings,
            triggers,
            base_image,
        })
    }
}

/// The 1-based line where `key:` starts, for messages about a whole value.
fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|line| line.starts_with(&format!("{key}:")))
        .map_or(1, |n| n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FunkoSpec, FunkoError> {
        FunkoSpec::parse(text, Path::new("f"), Path::new("f/funko.yml"))
    }

    #[test]
    fn loads_a_spec() {
        let spec = parse("name: hello\nruntime: flask\noptions:\n  workers: 3\n").unwrap();
        assert_eq!(spec.name, "hello");
        assert_eq!(spec.runtime.as_deref(), Some("flask"));
        assert_eq!(spec.options.len(), 1);
        let bare = parse("name: bare\n").unwrap();
        assert_eq!(bare.runtime, None);
        assert!(bare.options.is_empty());
    }

    #[test]
    fn scaling_and_limits_are_read_and_checked() {
        let spec =
            parse("name: hello\nscaling:\n  min: 0\n  max: 3\nlimits:\n  timeout: 5s\n").unwrap();
        assert_eq!(spec.settings.scale_min, Some(0));
        assert_eq!(spec.settings.scale_max, Some(3));
        assert_eq!(
            spec.settings.timeout,
            Some(std::time::Duration::from_secs(5))
        );
        assert_eq!(parse("name: hello\n").unwrap().settings, Default::default());
        let err = parse("name: hello\nlimits:\n  timeout: soon\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("f/funko.yml:2:1: limits.timeout: expected a duration"),
            "{err}"
        );
        let err = parse("name: hello\nscaling: 3\n").unwrap_err().to_string();
        assert_eq!(
            err,
            "f/funko.yml:2:1: scaling must be a mapping of settings to values"
        );
    }

    #[test]
    fn errors_point_at_file_line_and_column() {
        let err = parse("name: hello\nruntime: [flask\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("f/funko.yml:"), "{err}");
        assert!(!err.contains(" at line "), "{err}");
        let err = parse("name: hello\nrutnime: flask\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("f/funko.yml:2:1: unknown field `rutnime`"),
            "{err}"
        );
        let err = parse("name: Hello-World\n").unwrap_err().to_string();
        assert!(err.contains("invalid funko name \"Hello-World\""), "{err}");
        let err = parse("name: x\noptions: [1]\n").unwrap_err().to_string();
        assert!(
            err.starts_with("f/funko.yml:2:1: options must be a mapping"),
            "{err}"
        );
        let err = parse("runtime: flask\n").unwrap_err().to_string();
        assert!(err.contains("missing field `name`"), "{err}");
    }

    #[test]
    fn folder_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = FunkoSpec::load(&dir.path().join("nope")).unwrap_err();
        assert!(
            missing.to_string().ends_with("nope: no such folder"),
            "{missing}"
        );
        let empty = FunkoSpec::load(dir.path()).unwrap_err();
        assert!(
            empty.to_string().contains("funko.yml: not found"),
            "{empty}"
        );
    }
}
