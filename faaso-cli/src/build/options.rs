//! Runtime options: each runtime declares the options it accepts in `options.yml` (type,
//! default, help); a funko's `options:` are checked against that and completed with the
//! defaults before templates are rendered, so templates can use every option directly.
//!
//! Types: `string`, `integer`, `boolean`, `duration` (`10s`, `500ms`, `1m`), `list` (of strings),
//! and `static-executable`: the name of a file in the funko folder that must be an executable
//! able to run with nothing else in the image (checked when the build context is assembled).

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Map, Value};

/// One declared option.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionDecl {
    #[serde(rename = "type")]
    pub kind: OptionType,
    #[serde(default)]
    pub default: Option<serde_yaml::Value>,
    #[serde(default)]
    pub help: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptionType {
    String,
    Integer,
    Boolean,
    Duration,
    List,
    #[serde(rename = "static-executable")]
    StaticExecutable,
}

/// Options that do not fit the runtime.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error("runtime {runtime}: options.yml is invalid: {message}")]
    Schema { runtime: String, message: String },
    #[error("{file}: unknown option `{option}` for runtime {runtime} (known: {known})")]
    Unknown {
        file: PathBuf,
        option: String,
        runtime: String,
        known: String,
    },
    #[error("{file}: option `{option}` must be {expected}, got {got}")]
    Type {
        file: PathBuf,
        option: String,
        expected: &'static str,
        got: String,
    },
}

/// A runtime's declared options, in declaration order.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    options: Vec<(String, OptionDecl)>,
}

impl Schema {
    /// Parses `options.yml`.
    pub fn parse(runtime: &str, text: &[u8]) -> Result<Schema, OptionsError> {
        let schema_error = |message: String| OptionsError::Schema {
            runtime: runtime.to_string(),
            message,
        };
        let mapping: serde_yaml::Mapping =
            serde_yaml::from_slice(text).map_err(|e| schema_error(e.to_string()))?;
        let mut options = Vec::new();
        for (key, value) in mapping {
            let name = key
                .as_str()
                .ok_or_else(|| schema_error(format!("option name {key:?} is not a string")))?
                .to_string();
            let decl: OptionDecl = serde_yaml::from_value(value)
                .map_err(|e| schema_error(format!("option `{name}`: {e}")))?;
            options.push((name, decl));
        }
        Ok(Schema { options })
    }

    pub fn iter(&self) -> impl Iterator<Item = &(String, OptionDecl)> {
        self.options.iter()
    }

    /// Checks a funko's options and fills in the defaults. `file` and `runtime` name the
    /// culprit in errors.
    pub fn apply(
        &self,
        given: &serde_yaml::Mapping,
        file: &std::path::Path,
        runtime: &str,
    ) -> Result<Map<String, Value>, OptionsError> {
        let mut out = Map::new();
        for (key, value) in given {
            let name = key.as_str().unwrap_or_default().to_string();
            let Some((_, decl)) = self.options.iter().find(|(n, _)| *n == name) else {
                return Err(OptionsError::Unknown {
                    file: file.to_path_buf(),
                    option: name,
                    runtime: runtime.to_string(),
                    known: self
                        .options
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            };
            let value = check(decl.kind, value).map_err(|expected| OptionsError::Type {
                file: file.to_path_buf(),
                option: name.clone(),
                expected,
                got: serde_yaml::to_string(value)
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            })?;
            out.insert(name, value);
        }
        for (name, decl) in &self.options {
            if out.contains_key(name) {
                continue;
            }
            let default = match &decl.default {
                Some(default) => {
                    check(decl.kind, default).map_err(|expected| OptionsError::Schema {
                        runtime: runtime.to_string(),
                        message: format!("default of `{name}` must be {expected}"),
                    })?
                }
                None => Value::Null,
            };
            out.insert(name.clone(), default);
        }
        Ok(out)
    }
}

/// Converts a value of the declared type to JSON; `Err` names the expected type.
fn check(kind: OptionType, value: &serde_yaml::Value) -> Result<Value, &'static str> {
    use serde_yaml::Value as Y;
    match (kind, value) {
        (OptionType::String, Y::String(s)) => Ok(Value::String(s.clone())),
        (OptionType::String, Y::Number(n)) => Ok(Value::String(n.to_string())),
        (OptionType::String, _) => Err("a string"),
        (OptionType::StaticExecutable, Y::String(s)) if !s.is_empty() => {
            Ok(Value::String(s.clone()))
        }
        (OptionType::StaticExecutable, _) => Err("a file name"),
        (OptionType::Integer, Y::Number(n)) if n.is_i64() || n.is_u64() => {
            Ok(serde_json::to_value(n).map_err(|_| "an integer")?)
        }
        (OptionType::Integer, _) => Err("an integer"),
        (OptionType::Boolean, Y::Bool(b)) => Ok(Value::Bool(*b)),
        (OptionType::Boolean, _) => Err("true or false"),
        (OptionType::Duration, Y::String(s)) if is_duration(s) => Ok(Value::String(s.clone())),
        (OptionType::Duration, _) => Err("a duration like 10s, 500ms or 1m"),
        (OptionType::List, Y::Sequence(items)) => items
            .iter()
            .map(|item| match item {
                Y::String(s) => Ok(Value::String(s.clone())),
                Y::Number(n) => Ok(Value::String(n.to_string())),
                _ => Err("a list of strings"),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        (OptionType::List, _) => Err("a list of strings"),
    }
}

/// Docker's duration syntax, as far as options use it: digits then `ms`, `s`, `m` or `h`.
fn is_duration(s: &str) -> bool {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && ["ms", "s", "m", "h"].contains(&unit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const SCHEMA: &str = "workers: {type: integer, default: 2}\npackages: {type: list, default: []}\n\
                          interval: {type: duration, default: 10s}\nversion: {type: string, default: \"3.12\"}\n";

    fn apply(options: &str) -> Result<Map<String, Value>, OptionsError> {
        let schema = Schema::parse("flask", SCHEMA.as_bytes()).unwrap();
        let given: serde_yaml::Mapping = serde_yaml::from_str(options).unwrap();
        schema.apply(&given, Path::new("f/funko.yml"), "flask")
    }

    #[test]
    fn defaults_fill_in_and_values_are_checked() {
        let options = apply("workers: 4\n").unwrap();
        assert_eq!(options["workers"], 4);
        assert_eq!(options["packages"], serde_json::json!([]));
        assert_eq!(options["interval"], "10s");
        assert_eq!(options["version"], "3.12");
        let options = apply("packages: [gcc, libpq-dev]\nversion: 3.11\n").unwrap();
        assert_eq!(options["packages"], serde_json::json!(["gcc", "libpq-dev"]));
        assert_eq!(options["version"], "3.11");
    }

    #[test]
    fn bad_options_name_the_option() {
        let err = apply("wrokers: 4\n").unwrap_err().to_string();
        assert_eq!(
            err,
            "f/funko.yml: unknown option `wrokers` for runtime flask (known: workers, packages, interval, version)"
        );
        let err = apply("workers: many\n").unwrap_err().to_string();
        assert_eq!(
            err,
            "f/funko.yml: option `workers` must be an integer, got many"
        );
        let err = apply("interval: soon\n").unwrap_err().to_string();
        assert!(err.contains("must be a duration"), "{err}");
        let err = apply("packages: gcc\n").unwrap_err().to_string();
        assert!(err.contains("must be a list of strings"), "{err}");
    }

    #[test]
    fn builtin_schemas_parse() {
        for name in crate::build::runtime::builtin_names() {
            let runtime = crate::build::runtime::Runtime::builtin(name).unwrap();
            let schema = Schema::parse(name, runtime.options_schema().unwrap()).unwrap();
            let applied = schema
                .apply(&serde_yaml::Mapping::new(), Path::new("funko.yml"), name)
                .unwrap();
            assert!(!applied.is_empty(), "{name}");
        }
    }
}
