//! Secrets handed to the funko's user through Docker, for when this process cannot give them
//! away itself.
//!
//! A secret file is 0600, so only its owner (and root) can read it. When FaaSO runs as root and
//! the image's user is numeric, [`SecretsDir::give_to`](crate::store::secrets::SecretsDir::give_to)
//! changes the owner. When FaaSO runs as a normal user (in the `docker` group, the usual setup)
//! it cannot, and when the image names its user (`USER app`) the number is only known inside
//! the image. Then the Docker engine, which runs as root, writes the files: a helper container
//! of the funko's own image (created, never started, removed right after) has the funko's
//! secrets folder mounted, and the files are uploaded into it as a tar whose entries belong to
//! the image's user, by number in the tar header. A named user (`USER funko`) is resolved from
//! the image's own `/etc/passwd` and `/etc/group`, read out of the helper container: Docker's
//! own resolution (`copy_uidgid`) looks the name up in the engine host's user database, not
//! the image's, and fails for any name the host lacks (`getent unable to find entry "funko"`).
//! Each file is uploaded under a temporary name and renamed into place, so a reader never sees
//! half a value. The folder stays owned by the user who runs FaaSO, mode 0711: the funko can
//! open `/secrets/<name>` but not list the folder, and no one else can read a value.

use std::path::Path;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::UploadToContainerOptions;

use crate::engine::docker::{DockerError, remove_container};
use crate::store::secrets::numeric_user;

/// Prefix of a file uploaded but not yet renamed into place.
const PENDING_PREFIX: &str = ".faaso-new-";

/// Whether an image's `USER` is root (no `USER`, `root`, `0`, `0:0`).
pub fn is_root_user(user: &str) -> bool {
    let name = user.split(':').next().unwrap_or("").trim();
    name.is_empty() || name == "root" || name == "0"
}

/// Whether files must go through Docker to reach `image_user` (see the module header).
pub fn needed(image_user: &str) -> bool {
    !is_root_user(image_user)
        && (!crate::store::files::is_root() || numeric_user(image_user).is_none())
}

/// Writes `files` (name, value) into `dir` as files of `image_user`, mode 0600, through a helper
/// container of `image`.
pub async fn hand_over(
    docker: &Docker,
    image: &str,
    image_user: &str,
    dir: &Path,
    files: &[(String, Vec<u8>)],
) -> Result<(), DockerError> {
    if files.is_empty() {
        return Ok(());
    }
    // The funko's user must be able to pass through the folder to its files.
    crate::store::files::set_mode(dir, 0o711)
        .map_err(|e| DockerError::Gone(format!("{}: {e}", dir.display())))?;
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        labels: Some(
            [(
                crate::conventions::MANAGED_LABEL.to_string(),
                "true".to_string(),
            )]
            .into(),
        ),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            binds: Some(vec![format!("{}:/secrets", dir.display())]),
            network_mode: Some("none".to_string()),
            ..Default::default()
        }),
        ..Default::default()
    };
    // No name: Docker's random names never look like an instance (`faaso-<funko>-<suffix>`).
    let helper = docker
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            body,
        )
        .await
        .map_err(DockerError::call(format!(
            "create a container of {image} to hand secrets to its user"
        )))?
        .id;
    let uploaded = async {
        let owner = match numeric_user(image_user) {
            Some(owner) => owner,
            None => image_owner(docker, &helper, image_user, image).await?,
        };
        let tar = pending_tar(files, owner).map_err(|e| DockerError::Gone(e.to_string()))?;
        let options = UploadToContainerOptions {
            path: "/secrets".to_string(),
            ..Default::default()
        };
        docker
            .upload_to_container(&helper, Some(options), bollard::body_full(tar.into()))
            .await
            .map_err(DockerError::call(format!(
                "hand secrets to user {image_user} of {image}"
            )))
    }
    .await;
    let removed = remove_container(docker, &helper).await;
    uploaded?;
    removed?;
    for (name, _) in files {
        let pending = dir.join(format!("{PENDING_PREFIX}{name}"));
        std::fs::rename(&pending, dir.join(name)).map_err(|e| {
            let _ = std::fs::remove_file(&pending);
            DockerError::Gone(format!("{}: {e}", pending.display()))
        })?;
    }
    Ok(())
}

/// The numbers of `image_user` (`name`, `name:group`, `uid:group`, ...) in `image`'s own user
/// database, read from the (never started) `helper` container of it.
async fn image_owner(
    docker: &Docker,
    helper: &str,
    image_user: &str,
    image: &str,
) -> Result<(u32, u32), DockerError> {
    let passwd = container_file(docker, helper, "/etc/passwd").await?;
    let (user, group) = match image_user.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (image_user, None),
    };
    let not_found = |what: &str| {
        DockerError::Gone(format!(
            "user {image_user} of {image}: no {what} in the image's /etc/passwd or /etc/group"
        ))
    };
    let (uid, primary_gid) = match user.parse::<u32>() {
        Ok(uid) => (
            uid,
            database_ids(&passwd, |id| id.2 == uid).map_or(uid, |id| id.1),
        ),
        Err(_) => database_ids(&passwd, |id| id.0 == user)
            .map(|id| (id.2, id.1))
            .ok_or_else(|| not_found(&format!("user {user}")))?,
    };
    let gid = match group {
        None => primary_gid,
        Some(group) => match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let groups = container_file(docker, helper, "/etc/group").await?;
                group_id(&groups, group).ok_or_else(|| not_found(&format!("group {group}")))?
            }
        },
    };
    Ok((uid, gid))
}

/// One file of a container, read through Docker's archive API.
async fn container_file(
    docker: &Docker,
    container: &str,
    path: &str,
) -> Result<String, DockerError> {
    use futures_util::TryStreamExt;
    let options = bollard::query_parameters::DownloadFromContainerOptions {
        path: path.to_string(),
    };
    let chunks: Vec<bytes::Bytes> = docker
        .download_from_container(container, Some(options))
        .try_collect()
        .await
        .map_err(DockerError::call(format!(
            "read {path} of the helper container"
        )))?;
    let tar = chunks.concat();
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut read = || -> std::io::Result<String> {
        let mut entry = archive
            .entries()?
            .next()
            .ok_or_else(|| std::io::Error::other("an empty archive"))??;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text)?;
        Ok(text)
    };
    read().map_err(|e| DockerError::Gone(format!("{path} of the helper container: {e}")))
}

/// `(name, gid, uid)` of the first `/etc/passwd` line that `matches`.
fn database_ids(
    passwd: &str,
    matches: impl Fn(&(&str, u32, u32)) -> bool,
) -> Option<(&str, u32, u32)> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        let id = (
            *fields.first()?,
            fields.get(3)?.parse().ok()?,
            fields.get(2)?.parse().ok()?,
        );
        matches(&id).then_some(id)
    })
}

/// The id of group `name` in `/etc/group` text.
fn group_id(groups: &str, name: &str) -> Option<u32> {
    groups.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        fields.nth(1)?.parse().ok()
    })
}

/// The files as tar entries under their pending names, mode 0600, owned by `owner`.
fn pending_tar(files: &[(String, Vec<u8>)], owner: (u32, u32)) -> std::io::Result<Vec<u8>> {
    let (uid, gid) = owner;
    let mut tar = tar::Builder::new(Vec::new());
    for (name, value) in files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(value.len() as u64);
        header.set_mode(0o600);
        header.set_uid(u64::from(uid));
        header.set_gid(u64::from(gid));
        header.set_mtime(0);
        tar.append_data(
            &mut header,
            format!("{PENDING_PREFIX}{name}"),
            value.as_slice(),
        )?;
    }
    tar.into_inner()
}

/// Files in `dir` that this process still owns (added before the funko's image was known, or
/// with a root image before), with their values: what a new instance must be handed.
pub fn still_ours(dir: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        if metadata.is_file()
            && metadata.uid() == me
            && crate::store::secrets::validate_secret_name(&name).is_ok()
            && !name.starts_with(PENDING_PREFIX)
        {
            files.push((name, std::fs::read(entry.path())?));
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_needs_docker() {
        for root in ["", "root", "0", "0:0", "root:root"] {
            assert!(is_root_user(root), "{root:?}");
            assert!(!needed(root), "{root:?}");
        }
        // A named user is looked up in the image, whoever runs FaaSO.
        assert!(needed("app"));
        assert_eq!(needed("65534:65534"), !crate::store::files::is_root());
    }

    #[test]
    fn pending_entries_carry_the_owner_and_a_private_mode() {
        let files = vec![("token".to_string(), b"abc".to_vec())];
        let tar = pending_tar(&files, (65534, 65533)).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let entry = archive.entries().unwrap().next().unwrap().unwrap();
        let header = entry.header();
        assert_eq!(entry.path().unwrap().to_str(), Some(".faaso-new-token"));
        assert_eq!(header.mode().unwrap(), 0o600);
        assert_eq!(header.uid().unwrap(), 65534);
        assert_eq!(header.gid().unwrap(), 65533);
        assert_eq!(header.size().unwrap(), 3);
    }

    #[test]
    fn names_are_read_from_the_image_user_database() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nfunko:x:10001:10002::/nonexistent:/usr/sbin/nologin\n";
        assert_eq!(
            database_ids(passwd, |id| id.0 == "funko"),
            Some(("funko", 10002, 10001))
        );
        assert_eq!(database_ids(passwd, |id| id.0 == "app"), None);
        assert_eq!(
            database_ids(passwd, |id| id.2 == 10001).map(|id| id.1),
            Some(10002)
        );
        let groups = "root:x:0:\nfunko:x:10002:\nstaff:x:50:funko\n";
        assert_eq!(group_id(groups, "staff"), Some(50));
        assert_eq!(group_id(groups, "nogroup"), None);
    }
}
