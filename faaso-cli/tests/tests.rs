//! Integration tests of the `faaso` binary: golden files for `new` and `export` of every
//! built-in runtime, and clear one-line errors with exit codes for bad input.
//! Docker builds are tested end to end in `tests/e2e/cli.rs`.

mod golden;

use std::process::{Command, Output};

fn faaso() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_faaso"));
    command.env_remove("FAASO_SERVER");
    command
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `faaso` in `dir` and expects a one-line error containing `expected`, with `code`.
fn expect_error(dir: &std::path::Path, args: &[&str], code: i32, expected: &str) {
    let out = faaso().current_dir(dir).args(args).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "faaso {args:?}: {err}");
    let error_lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(
        error_lines.len(),
        1,
        "faaso {args:?}: expected one error line, got:\n{err}"
    );
    assert!(
        err.contains(expected),
        "faaso {args:?}: {expected:?} not in:\n{err}"
    );
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
    let dir = tempfile::tempdir().unwrap();
    expect_error(dir.path(), &["no-such-command"], 2, "no-such-command");
    expect_error(dir.path(), &["new", "x"], 2, "--runtime");
    expect_error(dir.path(), &["build"], 2, "<FOLDERS>");
}

#[test]
fn every_command_has_help() {
    for command in [
        "new",
        "build",
        "export",
        "up",
        "down",
        "scale",
        "deploy",
        "status",
        "logs",
        "secret",
        "purge",
        "login",
        "version",
        "completions",
    ] {
        let out = faaso().args([command, "--help"]).output().unwrap();
        assert!(out.status.success(), "{command} --help");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("Usage: faaso"), "{command}: {help}");
    }
}

#[test]
fn completions_for_bash() {
    let out = faaso().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("_faaso()"));
}

#[test]
fn bad_input_gets_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    expect_error(d, &["build", "missing"], 1, "missing: no such folder");
    std::fs::create_dir(d.join("empty")).unwrap();
    expect_error(d, &["build", "empty"], 1, "empty/funko.yml: not found");
    std::fs::create_dir(d.join("broken")).unwrap();
    std::fs::write(
        d.join("broken/funko.yml"),
        "name: broken\nruntime: [flask\n",
    )
    .unwrap();
    expect_error(
        d,
        &["export", "broken", "out"],
        1,
        "broken/funko.yml:2:10: runtime: invalid type",
    );
    std::fs::write(
        d.join("broken/funko.yml"),
        "name: broken\nruntime: flask\n  options: {}\n",
    )
    .unwrap();
    expect_error(d, &["export", "broken", "out"], 1, "broken/funko.yml:3:");
    std::fs::create_dir(d.join("badname")).unwrap();
    std::fs::write(d.join("badname/funko.yml"), "name: Bad-Name\n").unwrap();
    expect_error(
        d,
        &["export", "badname", "out"],
        1,
        "invalid funko name \"Bad-Name\": use 1 to 48 characters",
    );
    expect_error(
        d,
        &["new", "-r", "flask", "Bad-Name"],
        1,
        "use 1 to 48 characters from a-z, 0-9 and _",
    );
    expect_error(
        d,
        &["new", "-r", "cobol", "ok"],
        1,
        "unknown runtime \"cobol\"",
    );
    std::fs::create_dir(d.join("unknownrt")).unwrap();
    std::fs::write(
        d.join("unknownrt/funko.yml"),
        "name: unknownrt\nruntime: cobol\n",
    )
    .unwrap();
    expect_error(
        d,
        &["export", "unknownrt", "out"],
        1,
        "unknown runtime \"cobol\"",
    );
    std::fs::create_dir(d.join("badopt")).unwrap();
    std::fs::write(
        d.join("badopt/funko.yml"),
        "name: badopt\nruntime: flask\noptions:\n  workers: many\n",
    )
    .unwrap();
    expect_error(
        d,
        &["export", "badopt", "out"],
        1,
        "option `workers` must be an integer, got many",
    );
    // A runtime folder with a template that uses an undefined variable.
    std::fs::create_dir_all(d.join("myrt")).unwrap();
    std::fs::write(
        d.join("myrt/Dockerfile.hbs"),
        "FROM scratch\nLABEL x={{options.missing}}\n",
    )
    .unwrap();
    std::fs::create_dir(d.join("tpl")).unwrap();
    std::fs::write(d.join("tpl/funko.yml"), "name: tpl\nruntime: ../myrt\n").unwrap();
    expect_error(
        d,
        &["export", "tpl", "out"],
        1,
        "template Dockerfile.hbs: variable `options.missing` is not defined",
    );
    assert!(!d.join("out").exists(), "nothing written on failure");
    std::fs::create_dir(d.join("exists")).unwrap();
    expect_error(
        d,
        &["new", "-r", "flask", "exists"],
        1,
        "exists: already exists",
    );
}

#[test]
fn docker_unreachable_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let out = faaso()
        .current_dir(dir.path())
        .args(["new", "-r", "binary", "hello"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = faaso()
        .current_dir(dir.path())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(["build", "hello"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("cannot reach the Docker engine")
            && err.contains("is the engine running?")
            && err.contains("DOCKER_HOST=unix:///nonexistent/docker.sock"),
        "{err}"
    );
}
