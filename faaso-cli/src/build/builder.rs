//! `faaso build`: funko folder → build context → Docker image `faaso-<name>`, tagged `latest`
//! and `<unix-seconds>`, with Docker's output turned into progress events.

use std::path::Path;

use bollard::Docker;

use crate::build::context::{BuildContext, ContextError};
use crate::conventions::{InvalidName, image_repo, validate_name};
use crate::engine::docker::{self, BuildOutput, DockerError};
use crate::funko::{FunkoError, FunkoSpec};

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// Use this name instead of the one in `funko.yml`.
    pub name: Option<String>,
    /// Build every step again instead of using Docker's cache.
    pub no_cache: bool,
    /// Releases to keep after the build (older ones are pruned, see [`crate::engine::releases`]).
    pub keep_releases: usize,
}

impl Default for BuildRequest {
    fn default() -> BuildRequest {
        BuildRequest {
            name: None,
            no_cache: false,
            keep_releases: crate::engine::releases::DEFAULT_KEEP,
        }
    }
}

/// Progress of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildEvent {
    /// Docker started step `number` of `total`.
    Step {
        number: usize,
        total: usize,
        instruction: String,
    },
    /// A line of build output.
    Output(String),
}

/// A finished build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub name: String,
    /// `faaso-<name>:latest` and `faaso-<name>:<unix-seconds>`.
    pub tags: Vec<String>,
    pub image_id: Option<String>,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Funko(#[from] FunkoError),
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error("--name: {0}")]
    Name(#[from] InvalidName),
    #[error("cannot make the build context: {0}")]
    Tar(std::io::Error),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("building {name} failed at {step}: {message}")]
    Step {
        name: String,
        step: String,
        message: String,
    },
}

/// Loads a funko and assembles its build context; the name is `name` when given.
pub fn prepare(folder: &Path, name: Option<&str>) -> Result<(FunkoSpec, BuildContext), BuildError> {
    let mut spec = FunkoSpec::load(folder)?;
    if let Some(name) = name {
        validate_name(name)?;
        spec.name = name.to_string();
    }
    let context = BuildContext::assemble(&spec)?;
    Ok((spec, context))
}

/// Like [`prepare`], for a build: also refuses a context whose image could not start (see
/// [`BuildContext::check_runnable`]).
pub fn prepare_build(
    folder: &Path,
    name: Option<&str>,
) -> Result<(FunkoSpec, BuildContext), BuildError> {
    let (spec, context) = prepare(folder, name)?;
    context.check_runnable()?;
    Ok((spec, context))
}

/// Builds the funko in `folder`.
pub async fn build(
    docker: &Docker,
    folder: &Path,
    request: &BuildRequest,
    on_event: impl FnMut(BuildEvent),
) -> Result<Built, BuildError> {
    let (spec, context) = prepare_build(folder, request.name.as_deref())?;
    let tar = context.to_tar().map_err(BuildError::Tar)?;
    build_context(
        docker,
        &spec.name,
        docker::ContextBody::Tar(tar),
        request.no_cache,
        request.keep_releases,
        on_event,
    )
    .await
}

/// Builds an assembled context (a tar, or a stream of one) as the image of funko `name`.
pub async fn build_context(
    docker: &Docker,
    name: &str,
    tar: docker::ContextBody,
    no_cache: bool,
    keep_releases: usize,
    mut on_event: impl FnMut(BuildEvent),
) -> Result<Built, BuildError> {
    let repo = image_repo(name);
    let latest = format!("{repo}:latest");
    let mut step = String::from("the start");
    let mut from_image = None;
    let mut failure = None;
    let mut image_id = None;
    docker::build_image(docker, tar, &latest, no_cache, |output| match output {
        BuildOutput::Line(line) => {
            if let Some((number, total, instruction)) = parse_step(&line) {
                step = format!("step {number}/{total} ({instruction})");
                from_image = base_image_of(instruction).map(str::to_string);
                on_event(BuildEvent::Step {
                    number,
                    total,
                    instruction: instruction.to_string(),
                });
            }
            on_event(BuildEvent::Output(line));
        }
        BuildOutput::Error(message) => failure = Some(message.trim().to_string()),
        BuildOutput::ImageId(id) => image_id = Some(id),
    })
    .await?;
    if let Some(mut message) = failure {
        if let Some(image) = from_image {
            message.push_str(&pull_hint(&image));
        }
        return Err(BuildError::Step {
            name: name.to_string(),
            step,
            message,
        });
    }
    let stamped = release_tag(docker, &repo, image_id.as_deref()).await?;
    docker::tag_image(docker, &latest, &repo, &stamped).await?;
    for tag in crate::engine::releases::prune(docker, name, keep_releases).await? {
        on_event(BuildEvent::Output(format!("removed old release {tag}")));
    }
    Ok(Built {
        name: name.to_string(),
        tags: vec![latest, format!("{repo}:{stamped}")],
        image_id,
    })
}

/// The release tag of a new build: the current unix second, or the next free one when an
/// earlier build of another image already has it (two builds in one second), so that every
/// release keeps its own tag and their order.
async fn release_tag(
    docker: &Docker,
    repo: &str,
    image_id: Option<&str>,
) -> Result<String, BuildError> {
    let mut seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    loop {
        let tag = seconds.to_string();
        match docker::image_inspect(docker, &format!("{repo}:{tag}")).await? {
            Some(existing) if existing.id.as_deref() != image_id => seconds += 1,
            _ => return Ok(tag),
        }
    }
}

/// The image a `FROM` instruction starts from (`FROM python:3.12-slim AS build` →
/// `python:3.12-slim`); `None` for other instructions.
fn base_image_of(instruction: &str) -> Option<&str> {
    let mut words = instruction.split_whitespace();
    let keyword = words.next()?;
    if !keyword.eq_ignore_ascii_case("FROM") {
        return None;
    }
    words.find(|word| !word.starts_with("--"))
}

/// What to do when a base image cannot be had: the step that failed was its `FROM`, so Docker
/// could neither find it locally nor pull it (most often: no registry is reachable).
fn pull_hint(image: &str) -> String {
    format!(
        " (the base image {image} is not on this host and could not be pulled; with no registry \
         or a mirror, name another image with base_image in funko.yml or \
         FAASO_BASE_IMAGE_<RUNTIME>: README, \"Base images\")"
    )
}

/// `Step 3/7 : RUN make` → `(3, 7, "RUN make")`.
pub fn parse_step(line: &str) -> Option<(usize, usize, &str)> {
    let rest = line.strip_prefix("Step ")?;
    let (counts, instruction) = rest.split_once(" : ")?;
    let (number, total) = counts.split_once('/')?;
    Some((
        number.parse().ok()?,
        total.parse().ok()?,
        instruction.trim(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_parsed() {
        assert_eq!(parse_step("Step 3/7 : RUN make"), Some((3, 7, "RUN make")));
        assert_eq!(parse_step(" ---> Running in abc"), None);
        assert_eq!(parse_step("Step x/7 : RUN"), None);
    }

    #[test]
    fn a_failed_from_names_its_image_and_the_way_out() {
        assert_eq!(
            base_image_of("FROM python:3.12-slim AS build"),
            Some("python:3.12-slim")
        );
        assert_eq!(
            base_image_of("from --platform=linux/amd64 debian:bookworm-slim"),
            Some("debian:bookworm-slim")
        );
        assert_eq!(base_image_of("RUN pip install"), None);
        let hint = pull_hint("node:22-slim");
        assert!(hint.contains("node:22-slim") && hint.contains("FAASO_BASE_IMAGE_"));
        assert!(!hint.contains('\n'));
    }
}
