//! A funko's Swarm secrets `faaso-<funko>-<secret>`, mounted at `/secrets/<secret>`: adding
//! (a new version when the value changes), removing, listing, and pointing the service at them.

use std::collections::HashMap;

use bollard::models::{SecretSpec, TaskSpecContainerSpecFile, TaskSpecContainerSpecSecrets};
use bollard::query_parameters::ListSecretsOptions;

use super::*;
use crate::conventions::{FUNKO_LABEL, MANAGED_LABEL};
use crate::engine::LifecycleError;
use crate::engine::docker::DockerError;
use crate::store::secrets::numeric_user;

impl Swarm<'_> {
    /// The funko's Swarm secrets as the service mounts them: `/secrets/<secret>`, owned by the
    /// image's numeric user, mode 0400. The newest version of each secret wins.
    pub(super) async fn secret_refs(
        &self,
        funko: &str,
        user: &str,
    ) -> Result<Vec<TaskSpecContainerSpecSecrets>, LifecycleError> {
        let (uid, gid) = numeric_user(user).unwrap_or((0, 0));
        let mut newest: HashMap<String, (String, String, String)> = HashMap::new();
        for secret in self.funko_secrets(funko).await? {
            let spec = secret.spec.unwrap_or_default();
            let labels = spec.labels.unwrap_or_default();
            let (Some(file), Some(id), Some(name)) =
                (labels.get(SECRET_LABEL), secret.id, spec.name)
            else {
                continue;
            };
            let created = secret.created_at.map(|c| c.to_string()).unwrap_or_default();
            if newest.get(file).is_none_or(|(at, _, _)| *at < created) {
                newest.insert(file.clone(), (created, id, name));
            }
        }
        let mut refs: Vec<_> = newest
            .into_iter()
            .map(|(file, (_, id, name))| TaskSpecContainerSpecSecrets {
                file: Some(TaskSpecContainerSpecFile {
                    name: Some(format!("/secrets/{file}")),
                    uid: Some(uid.to_string()),
                    gid: Some(gid.to_string()),
                    mode: Some(0o400),
                }),
                secret_id: Some(id),
                secret_name: Some(name),
            })
            .collect();
        refs.sort_by(|a, b| a.secret_name.cmp(&b.secret_name));
        Ok(refs)
    }

    /// The names of every funko's Swarm secrets (never their values, which Swarm does not give
    /// out), by funko, sorted.
    pub async fn list_secrets(&self) -> Result<Vec<(String, Vec<String>)>, LifecycleError> {
        let options = ListSecretsOptions {
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![SECRET_LABEL.to_string()],
            )])),
        };
        let secrets = self
            .docker
            .list_secrets(Some(options))
            .await
            .map_err(DockerError::call("list secrets"))?;
        let mut by_funko: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
            Default::default();
        for secret in secrets {
            let labels = secret.spec.and_then(|s| s.labels).unwrap_or_default();
            if let (Some(funko), Some(name)) = (labels.get(FUNKO_LABEL), labels.get(SECRET_LABEL)) {
                by_funko
                    .entry(funko.clone())
                    .or_default()
                    .insert(name.clone());
            }
        }
        Ok(by_funko
            .into_iter()
            .map(|(f, names)| (f, names.into_iter().collect()))
            .collect())
    }

    /// The Swarm secrets of a funko (label `faaso.funko=<funko>`).
    pub(super) async fn funko_secrets(
        &self,
        funko: &str,
    ) -> Result<Vec<bollard::models::Secret>, LifecycleError> {
        let options = ListSecretsOptions {
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![format!("{FUNKO_LABEL}={funko}")],
            )])),
        };
        Ok(self
            .docker
            .list_secrets(Some(options))
            .await
            .map_err(DockerError::call(format!("list secrets of {funko}")))?)
    }

    /// The (id, name) of every version of one of a funko's Swarm secrets.
    pub(super) async fn secret_versions(
        &self,
        funko: &str,
        secret: &str,
    ) -> Result<Vec<(String, String)>, LifecycleError> {
        Ok(self
            .funko_secrets(funko)
            .await?
            .iter()
            .filter(|s| {
                s.spec
                    .as_ref()
                    .and_then(|spec| spec.labels.as_ref())
                    .and_then(|l| l.get(SECRET_LABEL))
                    .is_some_and(|f| f == secret)
            })
            .filter_map(|s| Some((s.id.clone()?, s.spec.as_ref()?.name.clone()?)))
            .collect())
    }

    /// Points the funko's service (when it exists) at its current secrets, leaving `without`
    /// out, and waits for the rolling update.
    pub(super) async fn remount_secrets(
        &self,
        funko: &str,
        without: &[String],
    ) -> Result<(), LifecycleError> {
        let Some(service) = self.service(funko).await? else {
            return Ok(());
        };
        let (_, user) = self.latest_image(funko).await?;
        let mut spec = service.spec.clone().unwrap_or_default();
        let mut refs = self.secret_refs(funko, &user).await?;
        refs.retain(|r| r.secret_id.as_ref().is_none_or(|id| !without.contains(id)));
        if let Some(container) = spec
            .task_template
            .as_mut()
            .and_then(|t| t.container_spec.as_mut())
        {
            container.secrets = Some(refs);
        }
        self.update_service(&service, spec).await?;
        if replicas_of(&service) > 0 {
            self.wait_for_update(funko, replicas_of(&service), &mut |_| {})
                .await?;
        }
        Ok(())
    }

    /// `secret rm` in Swarm mode: the service stops mounting it (a rolling update), then every
    /// version of it is removed.
    pub(super) async fn drop_secret(
        &self,
        funko: &str,
        secret: &str,
    ) -> Result<(), LifecycleError> {
        let versions = self.secret_versions(funko, secret).await?;
        if versions.is_empty() {
            return Err(crate::store::secrets::SecretError::NotFound {
                funko: funko.to_string(),
                secret: secret.to_string(),
            }
            .into());
        }
        let ids: Vec<String> = versions.iter().map(|(id, _)| id.clone()).collect();
        self.remount_secrets(funko, &ids).await?;
        for (id, name) in versions {
            self.docker
                .delete_secret(&id)
                .await
                .map_err(DockerError::call(format!("remove secret {name}")))?;
        }
        Ok(())
    }

    /// `secret add` in Swarm mode: a Swarm secret `faaso-<funko>-<secret>` (a value already
    /// stored gets a new secret `faaso-<funko>-<secret>-<unix-seconds>`, since Swarm secrets
    /// cannot change); a running service is updated to mount it (a rolling update) and the
    /// versions it no longer uses are removed.
    pub(super) async fn put_secret(
        &self,
        funko: &str,
        secret: &str,
        value: &[u8],
    ) -> Result<(), LifecycleError> {
        use base64::Engine as _;
        let versions = self.secret_versions(funko, secret).await?;
        let mut name = secret_name(funko, secret);
        if versions.iter().any(|(_, n)| *n == name) {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            name = format!("{name}-{now}");
        }
        let spec = SecretSpec {
            name: Some(name.clone()),
            labels: Some(HashMap::from([
                (FUNKO_LABEL.to_string(), funko.to_string()),
                (SECRET_LABEL.to_string(), secret.to_string()),
                (MANAGED_LABEL.to_string(), "true".to_string()),
            ])),
            data: Some(base64::engine::general_purpose::STANDARD.encode(value)),
            ..Default::default()
        };
        self.docker
            .create_secret(spec)
            .await
            .map_err(DockerError::call(format!("create secret {name}")))?;
        self.remount_secrets(funko, &[]).await?;
        // Older versions the service no longer mounts go (one still in use stays).
        for (id, _) in versions {
            let _ = self.docker.delete_secret(&id).await;
        }
        Ok(())
    }

    /// Removes every version of every Swarm secret of the funko.
    pub(super) async fn remove_secrets(
        &self,
        funko: &str,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), LifecycleError> {
        for secret in self.funko_secrets(funko).await? {
            let (Some(id), name) = (secret.id, secret.spec.and_then(|s| s.name)) else {
                continue;
            };
            self.docker
                .delete_secret(&id)
                .await
                .map_err(DockerError::call(format!("remove secret {id}")))?;
            report(format!("removed secret {}", name.unwrap_or(id)));
        }
        Ok(())
    }
}
