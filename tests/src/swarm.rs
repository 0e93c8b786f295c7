//! Docker Swarm for tests: a single-node swarm on the test engine (made when the engine is in
//! none, left afterwards), and the gateway as an image built from the test's own binary.

use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher;
use std::path::Path;
use std::process::Command;

use bollard::Docker;

use crate::testfunko::append;

/// The engine's swarm for the length of a test: joined by `docker swarm init --advertise-addr
/// 127.0.0.1` when the engine was in none, and left (`--force`) on drop in that case only.
pub struct Swarm {
    created: bool,
}

impl Swarm {
    pub fn join() -> Swarm {
        let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        if state.trim() == "active" {
            return Swarm { created: false };
        }
        docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
        Swarm { created: true }
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        if self.created {
            let _ = Command::new("docker")
                .args(["swarm", "leave", "--force"])
                .output();
        }
    }
}

/// Runs `docker <args>` and returns its standard output; panics with its error otherwise.
pub fn docker(args: &[&str]) -> String {
    docker_with_env(args, &[])
}

/// [`docker`] with extra environment variables.
pub fn docker_with_env(args: &[&str], env: &[(&str, &str)]) -> String {
    let output = Command::new("docker")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|err| panic!("docker {args:?}: {err}"));
    assert!(
        output.status.success(),
        "docker {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The gateway as an image, `testgateway:<hash>`: this build's `faaso-gateway` (debug info
/// stripped) with the shared libraries it loads, `FROM scratch`, so no registry is needed.
pub async fn gateway_image(docker: &Docker) -> String {
    let binary = crate::bins::path("faaso-gateway");
    let stripped = crate::bins::profile_dir().join("faaso-gateway.stripped");
    let status = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(&binary)
        .arg(&stripped)
        .status()
        .expect("objcopy runs");
    assert!(
        status.success(),
        "objcopy --strip-debug {}",
        binary.display()
    );
    let executable = std::fs::read(&stripped).expect("the stripped gateway can be read");
    let mut hasher = DefaultHasher::new();
    hasher.write(&executable);
    let tag = format!("testgateway:{:016x}", hasher.finish());
    if docker.inspect_image(&tag).await.is_ok() {
        return tag;
    }
    let mut context = tar::Builder::new(Vec::new());
    append(&mut context, "faaso-gateway", &executable, 0o755);
    let mut copies = String::new();
    for library in shared_libraries(&binary) {
        let data = std::fs::read(&library).expect("a shared library can be read");
        let inside = library.trim_start_matches('/');
        append(&mut context, &format!("libs/{inside}"), &data, 0o755);
        copies.push_str(&format!("COPY libs/{inside} /{inside}\n"));
    }
    let dockerfile = format!(
        "FROM scratch\n{copies}COPY faaso-gateway /faaso-gateway\nEXPOSE 8888\n\
         ENTRYPOINT [\"/faaso-gateway\"]\n"
    );
    append(&mut context, "Dockerfile", dockerfile.as_bytes(), 0o644);
    crate::testfunko::build(docker, context, &tag, false).await;
    tag
}

/// The shared libraries `ldd` says an executable loads (the files, links resolved).
fn shared_libraries(executable: &Path) -> Vec<String> {
    let output = Command::new("ldd")
        .arg(executable)
        .output()
        .expect("ldd runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut libraries = Vec::new();
    for line in text.lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.trim().split(' ').next().unwrap_or(""),
            None => line.trim().split(' ').next().unwrap_or(""),
        };
        if path.starts_with('/') {
            libraries.push(path.to_string());
            // The loader is found by the path the executable names; give the real file too.
            if let Ok(real) = std::fs::canonicalize(path) {
                let real = real.display().to_string();
                if real != path {
                    libraries.push(real);
                }
            }
        }
    }
    libraries
}
