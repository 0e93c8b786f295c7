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
        "rollback",
        "login",
        "logout",
        "version",
        "completions",
    ] {
        let out = faaso().args([command, "--help"]).output().unwrap();
        assert!(out.status.success(), "{command} --help");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("Usage: faaso"), "{command}: {help}");
    }
}

/// Arguments that take a value say what it is in `--help`.
#[test]
fn secret_add_help_describes_its_arguments() {
    let out = faaso().args(["secret", "add", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for line in [
        "The funko that reads the secret",
        "The secret's name: its file is",
    ] {
        assert!(help.contains(line), "{line:?} not in:\n{help}");
    }
}

/// `login` and `logout` deal with the saved login only: `--local` is not offered there.
#[test]
fn login_help_does_not_offer_local() {
    for command in ["login", "logout"] {
        let out = faaso().args([command, "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(!help.contains("--local"), "{command}: {help}");
    }
    let out = faaso().args(["status", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("--local"));
}

/// A reader that has gone (`faaso ... | head`) ends the command quietly, without a panic.
#[test]
fn a_closed_stdout_ends_quietly() {
    for args in [&["completions", "zsh"][..], &["version"], &["logout"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let dir = tempfile::tempdir().unwrap();
        let out = faaso()
            .args(args)
            .env("XDG_CONFIG_HOME", dir.path())
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "faaso {args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "faaso {args:?}: {err}");
    }
}

/// `logout` forgets the saved login, and says when there was none.
#[test]
fn logout_removes_the_saved_login() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("faaso/config.yml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, "server: http://gw.example:8888\npassword: x\n").unwrap();
    let logout = || {
        faaso()
            .arg("logout")
            .env("XDG_CONFIG_HOME", dir.path())
            .output()
            .unwrap()
    };
    let out = logout();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "logged out of http://gw.example:8888"
    );
    assert!(!config.exists());
    let out = logout();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "not logged in");
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
    expect_error(
        d,
        &["new", "-r", "./missing", "ok"],
        1,
        "error: runtime folder ./missing: no such folder",
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

/// Asking faaso for completions (`COMPLETE=bash faaso`, as the sourced script does) offers
/// funko names known here and the built-in runtimes.
#[test]
fn shells_complete_funko_names_and_runtimes() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(state.join("funkos")).unwrap();
    std::fs::write(state.join("funkos/alpha_one.yml"), "scale: 1\n").unwrap();
    let complete = |words: &[&str]| {
        let out = faaso()
            .env("COMPLETE", "bash")
            .env("FAASO_STATE_DIR", &state)
            .env("FAASO_SECRETS_DIR", dir.path().join("secrets"))
            .env("DOCKER_HOST", "unix:///nonexistent.sock")
            .env("_CLAP_COMPLETE_INDEX", (words.len() - 1).to_string())
            .arg("--")
            .args(words)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8_lossy(&out.stdout)
            .split(|c: char| c.is_whitespace() || c == '\u{b}')
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(complete(&["faaso", "up", "al"]), ["alpha_one"]);
    let offered = complete(&["faaso", "secret", "add", ""]);
    assert_eq!(offered[0], "alpha_one", "{offered:?}");
    assert!(
        offered[1..].iter().all(|w| w.starts_with("--")),
        "then flags: {offered:?}"
    );
    let runtimes = complete(&["faaso", "new", "-r", ""]);
    assert_eq!(runtimes, ["axum", "binary", "express", "flask"]);
    let script = faaso().env("COMPLETE", "bash").output().unwrap();
    assert!(String::from_utf8_lossy(&script.stdout).contains("_clap_complete_faaso"));
}
