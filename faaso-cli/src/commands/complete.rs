//! Completion candidates computed when the shell asks (`source <(COMPLETE=bash faaso)`): funko
//! names and runtimes. Quick and quiet: what cannot be read within a second is left out.

use std::time::Duration;

use clap_complete::engine::CompletionCandidate;

/// Funko names known here: saved scales, secrets folders, and `faaso-*` images and
/// containers of the local Docker engine.
pub fn funkos() -> Vec<CompletionCandidate> {
    let env = faaso::store::dirs::process_env;
    let mut names: Vec<String> =
        faaso::store::state::StateDir::new(faaso::store::dirs::state_dir(env))
            .all()
            .map(|listing| listing.funkos.into_iter().map(|(name, _)| name).collect())
            .unwrap_or_default();
    if let Ok(secrets) =
        faaso::store::secrets::SecretsDir::new(faaso::store::dirs::secrets_dir(env)).list(None)
    {
        names.extend(secrets.into_iter().map(|(name, _)| name));
    }
    names.extend(from_docker());
    names.sort();
    names.dedup();
    names.into_iter().map(CompletionCandidate::new).collect()
}

/// Funkos with an image or a container on the local engine (nothing when it does not answer
/// within a second).
fn from_docker() -> Vec<String> {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    runtime.block_on(async {
        let listed = tokio::time::timeout(Duration::from_secs(1), async {
            let docker = faaso::engine::docker::connect().await.ok()?;
            let images = faaso::engine::docker::list_all_images(&docker).await.ok()?;
            let containers = faaso::engine::docker::list_all_instances(&docker)
                .await
                .ok()?;
            let mut names: Vec<String> = images
                .iter()
                .flat_map(|i| i.repo_tags.iter())
                .filter_map(|tag| faaso::conventions::funko_of_image(tag))
                .map(str::to_string)
                .collect();
            names.extend(
                containers
                    .iter()
                    .filter_map(|c| c.names.as_ref()?.first())
                    .filter_map(|name| faaso::conventions::parse_instance_name(name))
                    .map(|parsed| parsed.funko.to_string()),
            );
            Some(names)
        })
        .await;
        listed.ok().flatten().unwrap_or_default()
    })
}

/// The built-in runtimes (a path is completed by the shell as a path).
pub fn runtimes() -> Vec<CompletionCandidate> {
    faaso::build::runtime::builtin_names()
        .into_iter()
        .map(CompletionCandidate::new)
        .collect()
}
