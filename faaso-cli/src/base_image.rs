//! Base images: which image each stage of a runtime's Dockerfile starts `FROM`.
//!
//! A runtime's template names its usual base images (`python:3.12-slim`, `node:22-slim`, ...).
//! A build host without a registry, or with a private mirror, replaces them:
//!
//! - `base_image: <image>` in `funko.yml` (both stages), or `base_image: {build: <image>, run:
//!   <image>}` (either or both);
//! - else `FAASO_BASE_IMAGE_<RUNTIME>` (both stages) and `FAASO_BASE_IMAGE_<RUNTIME>_RUN` (the
//!   run stage only) in the environment of the `faaso` command, which renders the templates
//!   (for a build on a server too: it uploads the rendered context).
//!
//! The funko's own choice wins over the host's. The chosen names reach the templates as
//! `base.build` and `base.run`, empty when the template's default stands. A name is checked
//! before it is written into a Dockerfile: it is one image reference, never an instruction.

use serde_json::{Value, json};

/// The longest image reference accepted (Docker's own limit on a name is 255 characters, a
/// digest adds 72).
const MAX_REFERENCE: usize = 400;

/// Base images chosen for the build and run stages; `None` keeps the template's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BaseImages {
    pub build: Option<String>,
    pub run: Option<String>,
}

impl BaseImages {
    /// Reads `base_image:` from `funko.yml`: a string, or a mapping with `build` and/or `run`.
    /// The error is the message after `base_image: `.
    pub fn from_yaml(value: Option<&serde_yaml::Value>) -> Result<BaseImages, String> {
        let expected = "expected an image name, or a mapping with build and run image names";
        match value {
            None | Some(serde_yaml::Value::Null) => Ok(BaseImages::default()),
            Some(serde_yaml::Value::String(image)) => {
                let image = checked(image)?;
                Ok(BaseImages {
                    build: Some(image.clone()),
                    run: Some(image),
                })
            }
            Some(serde_yaml::Value::Mapping(mapping)) => {
                let mut images = BaseImages::default();
                for (key, value) in mapping {
                    let stage = key.as_str().unwrap_or_default();
                    let image = value
                        .as_str()
                        .ok_or_else(|| format!("{stage}: {expected}"))
                        .and_then(|image| checked(image).map_err(|m| format!("{stage}: {m}")))?;
                    match stage {
                        "build" => images.build = Some(image),
                        "run" => images.run = Some(image),
                        _ => {
                            return Err(format!(
                                "unknown stage {stage:?} (the stages are build and run)"
                            ));
                        }
                    }
                }
                Ok(images)
            }
            Some(_) => Err(expected.to_string()),
        }
    }

    /// The images for `runtime`: the funko's own where it names one, else the host's
    /// `FAASO_BASE_IMAGE_<RUNTIME>[_RUN]` (read through `env`), else the template's default.
    pub fn resolve(
        &self,
        runtime: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<BaseImages, String> {
        let var = env_name(runtime);
        let from_env = |name: &str| -> Result<Option<String>, String> {
            match env(name).filter(|v| !v.trim().is_empty()) {
                None => Ok(None),
                Some(image) => checked(&image)
                    .map(Some)
                    .map_err(|m| format!("environment variable {name}: {m}")),
            }
        };
        let both = from_env(&var)?;
        let run_only = from_env(&format!("{var}_RUN"))?;
        Ok(BaseImages {
            build: self.build.clone().or_else(|| both.clone()),
            run: self.run.clone().or(run_only).or(both),
        })
    }

    /// `{build, run}` for the templates (empty strings for the defaults).
    pub fn template_value(&self) -> Value {
        json!({
            "build": self.build.clone().unwrap_or_default(),
            "run": self.run.clone().unwrap_or_default(),
        })
    }
}

/// `FAASO_BASE_IMAGE_<RUNTIME>`: the runtime's name upper-cased, other characters as `_`.
pub fn env_name(runtime: &str) -> String {
    let name: String = runtime
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("FAASO_BASE_IMAGE_{name}")
}

/// An image reference as Docker writes one (`registry:5000/team/python:3.12-slim@sha256:...`):
/// letters, digits and `._-/:@`, nothing else, so that it stays one word of a `FROM` line.
fn checked(image: &str) -> Result<String, String> {
    let image = image.trim();
    if image.is_empty() {
        return Err("the image name is empty".to_string());
    }
    if image.len() > MAX_REFERENCE {
        return Err(format!(
            "the image name is longer than {MAX_REFERENCE} characters"
        ));
    }
    if let Some(bad) = image
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-/:@".contains(*c)))
    {
        return Err(format!(
            "{image:?} is not an image name ({bad:?} is not allowed in one)"
        ));
    }
    if image.starts_with(['-', '.', ':', '/', '@']) {
        return Err(format!("{image:?} is not an image name"));
    }
    Ok(image.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> serde_yaml::Value {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn one_name_sets_both_stages_and_a_mapping_each() {
        let both = BaseImages::from_yaml(Some(&yaml("mirror.local/python:3.12-slim"))).unwrap();
        assert_eq!(both.build.as_deref(), Some("mirror.local/python:3.12-slim"));
        assert_eq!(both.run, both.build);
        let run = BaseImages::from_yaml(Some(&yaml("run: debian:bookworm-slim"))).unwrap();
        assert_eq!(run.build, None);
        assert_eq!(run.run.as_deref(), Some("debian:bookworm-slim"));
        assert_eq!(BaseImages::from_yaml(None).unwrap(), BaseImages::default());
    }

    #[test]
    fn a_name_that_is_not_one_image_is_refused() {
        for bad in [
            "\"python\\nRUN rm -rf /\"",
            "\"python slim\"",
            "\"\"",
            "\"--platform=x python\"",
            "[python]",
            "{stage: python}",
            "{build: [python]}",
        ] {
            assert!(
                BaseImages::from_yaml(Some(&yaml(bad))).is_err(),
                "{bad} was accepted"
            );
        }
        let err = BaseImages::from_yaml(Some(&yaml("\"a b\""))).unwrap_err();
        assert_eq!(
            err,
            "\"a b\" is not an image name (' ' is not allowed in one)"
        );
        let digest = format!("python@sha256:{}", "a".repeat(64));
        assert!(BaseImages::from_yaml(Some(&serde_yaml::Value::String(digest))).is_ok());
    }

    #[test]
    fn the_funko_wins_over_the_host_and_run_can_be_set_alone() {
        let env = |name: &str| match name {
            "FAASO_BASE_IMAGE_AXUM" => Some("local/rust".to_string()),
            "FAASO_BASE_IMAGE_AXUM_RUN" => Some("local/debian".to_string()),
            _ => None,
        };
        let host = BaseImages::default().resolve("axum", env).unwrap();
        assert_eq!(host.build.as_deref(), Some("local/rust"));
        assert_eq!(host.run.as_deref(), Some("local/debian"));
        let own = BaseImages {
            build: Some("mine/rust".to_string()),
            run: None,
        };
        let mixed = own.resolve("axum", env).unwrap();
        assert_eq!(mixed.build.as_deref(), Some("mine/rust"));
        assert_eq!(mixed.run.as_deref(), Some("local/debian"));
        let none = BaseImages::default().resolve("flask", env).unwrap();
        assert_eq!(none, BaseImages::default());
        let bad = |_: &str| Some("a;b".to_string());
        let err = BaseImages::default().resolve("flask", bad).unwrap_err();
        assert!(
            err.starts_with("environment variable FAASO_BASE_IMAGE_FLASK: "),
            "{err}"
        );
        assert_eq!(env_name("my-rt"), "FAASO_BASE_IMAGE_MY_RT");
    }
}
