//! `faaso new`: a new funko folder from a runtime's `template/`, with `.hbs` files rendered
//! (`{name, runtime, options}` with the runtime's default options).
//!
//! The folder is written next to its destination and moved into place at the end: a failure
//! leaves no half-made funko behind.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::build::context::{BuildContext, ContextError};
use crate::build::options::{OptionsError, Schema};
use crate::build::render::{RenderError, Renderer};
use crate::build::runtime::{Runtime, RuntimeError};
use crate::conventions::{InvalidName, validate_name};

/// Why a funko could not be created.
#[derive(Debug, thiserror::Error)]
pub enum NewError {
    #[error("{path}: already exists (faaso new makes a new folder)")]
    Exists { path: PathBuf },
    #[error("{path}: the folder name is the funko's name, and {source}")]
    Name {
        path: PathBuf,
        #[source]
        source: InvalidName,
    },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Options(#[from] OptionsError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Write(ContextError),
}

/// Creates `folder` as a funko of `runtime` (a built-in name or a path). Returns the name.
pub fn new_funko(runtime: &str, folder: &Path) -> Result<String, NewError> {
    if folder.symlink_metadata().is_ok() {
        return Err(NewError::Exists {
            path: folder.to_path_buf(),
        });
    }
    let name = folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    validate_name(&name).map_err(|source| NewError::Name {
        path: folder.to_path_buf(),
        source,
    })?;
    let runtime = Runtime::resolve(runtime, Path::new("."))?;
    let options = match runtime.options_schema() {
        Some(schema) => Value::Object(Schema::parse(&runtime.name, schema)?.apply(
            &serde_yaml::Mapping::new(),
            Path::new("options.yml"),
            &runtime.name,
        )?),
        None => json!({}),
    };
    let data = json!({ "name": name, "runtime": runtime.name, "options": options });
    let renderer = Renderer::new();
    let mut files = Vec::new();
    for (path, content) in runtime.template_files() {
        files.push(renderer.file(path, content, &data)?);
    }
    if !files
        .iter()
        .any(|(path, _)| path == crate::funko::FUNKO_YML)
    {
        let yml = format!("name: {name}\nruntime: {}\noptions: {{}}\n", runtime.name);
        files.push((crate::funko::FUNKO_YML.to_string(), yml.into_bytes()));
    }
    BuildContext::from_files(files)
        .write_to(folder)
        .map_err(|err| match err {
            ContextError::DestinationExists { path } => NewError::Exists { path },
            other => NewError::Write(other),
        })?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_loadable_funko() {
        let dir = tempfile::tempdir().unwrap();
        for runtime in crate::build::runtime::builtin_names() {
            let folder = dir.path().join(format!("hello_{runtime}"));
            let name = new_funko(runtime, &folder).unwrap();
            let spec = crate::funko::FunkoSpec::load(&folder).unwrap();
            assert_eq!(spec.name, name);
            assert_eq!(spec.runtime.as_deref(), Some(runtime));
            assert!(
                !std::fs::read_dir(&folder).unwrap().any(|e| e
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "hbs"))
            );
        }
    }

    #[test]
    fn refuses_existing_folders_and_bad_names() {
        let dir = tempfile::tempdir().unwrap();
        let err = new_funko("flask", dir.path()).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        let err = new_funko("flask", &dir.path().join("Hello-World"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the folder name is the funko's name") && err.contains("a-z, 0-9 and _"),
            "{err}"
        );
        let err = new_funko("cobol", &dir.path().join("ok"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown runtime"), "{err}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing left behind"
        );
    }
}
