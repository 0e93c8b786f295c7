//! Finds the binaries Cargo built for this workspace, next to the running test executable.
//!
//! `cargo test --workspace` builds `faaso-gateway` and `faaso` because their packages have
//! integration tests; a test that runs without them says how to build them.

use std::path::PathBuf;

/// The target profile folder (`target/debug` or `target/release`) of the running test.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    // <target>/<profile>/deps/<test-exe>
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(PathBuf::from)
        .expect("the test executable lives in <target>/<profile>/deps")
}

/// The Cargo target folder of the running test.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => profile_dir()
            .parent()
            .map(PathBuf::from)
            .expect("the profile folder has a parent"),
    }
}

/// The path of a workspace binary; panics with a hint when it has not been built.
pub fn path(name: &str) -> PathBuf {
    let path = profile_dir().join(name);
    assert!(
        path.is_file(),
        "{} not found: build it with `cargo build --workspace` or run `cargo test --workspace`",
        path.display()
    );
    path
}

/// The workspace folder (where `conf/` and the crates are).
pub fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .expect("the tests crate lives in the workspace")
}
