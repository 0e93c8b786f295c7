//! Integration tests of the `faaso` binary: arguments, exit codes and messages.

use std::process::Command;

fn faaso() -> Command {
    Command::new(env!("CARGO_BIN_EXE_faaso"))
}

#[test]
fn version_prints_the_client_version() {
    let out = faaso().arg("version").output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        format!("faaso {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = faaso().arg("no-such-command").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no-such-command"), "{stderr}");
}
