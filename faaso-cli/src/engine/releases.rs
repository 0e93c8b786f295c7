//! A funko's releases: the `<unix-seconds>` tags of its image, one per build. Old ones are
//! pruned so that images do not pile up: the newest `keep` releases stay, and so do the image
//! `latest` points at and every image an instance of the funko runs (a rollback target and
//! what serves are never removed).

use std::collections::HashSet;

use bollard::Docker;

use crate::conventions::image_repo;
use crate::engine::docker::{self, DockerError};

/// Releases kept by default (`keep_releases`, `FAASO_KEEP_RELEASES`).
pub const DEFAULT_KEEP: usize = 5;

/// The funko's releases: (unix seconds of the tag, image id), oldest first.
pub async fn list(docker: &Docker, funko: &str) -> Result<Vec<(u64, String)>, DockerError> {
    let repo = image_repo(funko);
    let mut releases: Vec<(u64, String)> = docker::list_images(docker, funko)
        .await?
        .into_iter()
        .flat_map(|image| {
            let id = image.id.clone();
            image
                .repo_tags
                .into_iter()
                .filter_map(|tag| tag.strip_prefix(&format!("{repo}:"))?.parse::<u64>().ok())
                .map(move |stamp| (stamp, id.clone()))
        })
        .collect();
    releases.sort();
    Ok(releases)
}

/// The release tags to remove: all but the newest `keep` and those of `protected` images.
pub fn to_prune(releases: &[(u64, String)], keep: usize, protected: &HashSet<String>) -> Vec<u64> {
    let kept_from = releases.len().saturating_sub(keep);
    releases[..kept_from]
        .iter()
        .filter(|(_, id)| !protected.contains(id))
        .map(|(stamp, _)| *stamp)
        .collect()
}

/// Removes old release tags of `funko` (see the module header); returns the tags removed. A tag
/// Docker refuses to remove (an exited container still uses its image) is left, not an error.
pub async fn prune(docker: &Docker, funko: &str, keep: usize) -> Result<Vec<String>, DockerError> {
    let releases = list(docker, funko).await?;
    let mut protected: HashSet<String> = docker::list_instances(docker, funko)
        .await?
        .into_iter()
        .filter_map(|c| c.image_id)
        .collect();
    if let Some(latest) = docker::image_inspect(docker, &crate::conventions::image_latest(funko))
        .await?
        .and_then(|info| info.id)
    {
        protected.insert(latest);
    }
    let mut removed = Vec::new();
    for stamp in to_prune(&releases, keep, &protected) {
        let tag = format!("{}:{stamp}", image_repo(funko));
        if docker::remove_image(docker, &tag).await.is_ok() {
            removed.push(tag);
        }
    }
    Ok(removed)
}

/// `keep_releases` from `FAASO_KEEP_RELEASES` (at least 1), else [`DEFAULT_KEEP`].
pub fn keep_from_env(env: impl Fn(&str) -> Option<String>) -> usize {
    env("FAASO_KEEP_RELEASES")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(DEFAULT_KEEP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_and_the_protected_stay() {
        let releases: Vec<(u64, String)> = (1..=8).map(|n| (n, format!("id{}", n % 7))).collect();
        // Release 1 and 8 are one image: removing tag 1 only untags what release 8 names.
        let none = HashSet::new();
        assert_eq!(to_prune(&releases, 5, &none), vec![1, 2, 3]);
        let serving = HashSet::from(["id2".to_string()]);
        assert_eq!(to_prune(&releases, 5, &serving), vec![1, 3]);
        assert!(to_prune(&releases, 10, &none).is_empty());
        assert_eq!(to_prune(&releases, 1, &none).len(), 7);
    }

    #[test]
    fn keep_comes_from_the_environment() {
        assert_eq!(keep_from_env(|_| None), DEFAULT_KEEP);
        assert_eq!(keep_from_env(|_| Some("2".into())), 2);
        assert_eq!(keep_from_env(|_| Some("0".into())), DEFAULT_KEEP);
        assert_eq!(keep_from_env(|_| Some("many".into())), DEFAULT_KEEP);
    }
}
