//! Golden files (`tests/golden/`): `faaso new -r <runtime> hello` must produce `new/<runtime>/`,
//! and `faaso export` of `export/<runtime>/in/` must produce `export/<runtime>/out/`, for every
//! built-in runtime. Run with `FAASO_BLESS=1` to rewrite the expected trees after a deliberate
//! change, then review the diff.
//!
//! A file named `Cargo.toml` is stored as `_Cargo.toml`, so that Cargo never mistakes test data
//! for a crate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const RUNTIMES: [&str; 4] = ["axum", "binary", "express", "flask"];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn bless() -> bool {
    std::env::var_os("FAASO_BLESS").is_some()
}

fn stored_name(name: &str) -> String {
    if name == "Cargo.toml" {
        "_Cargo.toml".to_string()
    } else {
        name.to_string()
    }
}

fn real_name(name: &str) -> String {
    if name == "_Cargo.toml" {
        "Cargo.toml".to_string()
    } else {
        name.to_string()
    }
}

/// Every file below `dir`: relative path → content, names mapped by `map`.
fn read_tree(dir: &Path, map: fn(&str) -> String) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, map: fn(&str) -> String, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, map, out);
            } else {
                let relative = path.strip_prefix(root).unwrap();
                let mut parts: Vec<String> = relative
                    .iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect();
                if let Some(last) = parts.last_mut() {
                    *last = map(last);
                }
                out.insert(parts.join("/"), std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    if dir.exists() {
        walk(dir, dir, map, &mut out);
    }
    out
}

fn write_tree(dir: &Path, tree: &BTreeMap<String, Vec<u8>>, map: fn(&str) -> String) {
    let _ = std::fs::remove_dir_all(dir);
    for (path, content) in tree {
        let mut parts: Vec<String> = path.split('/').map(str::to_string).collect();
        if let Some(last) = parts.last_mut() {
            *last = map(last);
        }
        let target = dir.join(parts.join("/"));
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, content).unwrap();
    }
}

/// Compares what a command produced with the expected tree (or rewrites it when blessing).
fn check(actual_dir: &Path, expected_dir: &Path) {
    let actual = read_tree(actual_dir, |n| n.to_string());
    if bless() {
        write_tree(expected_dir, &actual, stored_name);
        return;
    }
    let expected = read_tree(expected_dir, real_name);
    assert!(
        !expected.is_empty(),
        "{} is empty: run with FAASO_BLESS=1",
        expected_dir.display()
    );
    let names = |t: &BTreeMap<String, Vec<u8>>| t.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&actual),
        names(&expected),
        "files differ from {}",
        expected_dir.display()
    );
    for (path, content) in &actual {
        assert_eq!(
            String::from_utf8_lossy(content),
            String::from_utf8_lossy(&expected[path]),
            "{path} differs from {} (FAASO_BLESS=1 rewrites it)",
            expected_dir.display()
        );
    }
}

#[test]
fn new_matches_golden_files() {
    for runtime in RUNTIMES {
        let dir = tempfile::tempdir().unwrap();
        let out = super::faaso()
            .current_dir(dir.path())
            .args(["new", "-r", runtime, "hello"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{runtime}: {}", super::stderr(&out));
        check(
            &dir.path().join("hello"),
            &golden_dir().join("new").join(runtime),
        );
    }
}

#[test]
fn export_matches_golden_files() {
    for runtime in RUNTIMES {
        let dir = tempfile::tempdir().unwrap();
        let input = golden_dir().join("export").join(runtime).join("in");
        let funko = dir.path().join("hello");
        write_tree(&funko, &read_tree(&input, real_name), |n| n.to_string());
        let out = super::faaso()
            .current_dir(dir.path())
            .args(["export", "hello", "ctx"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{runtime}: {}", super::stderr(&out));
        check(
            &dir.path().join("ctx"),
            &golden_dir().join("export").join(runtime).join("out"),
        );
    }
}

/// The rendered Dockerfiles are well-formed: known instructions only, `FROM` first, base
/// images pinned to a major version, a non-root `USER`, port 3000.
#[test]
fn exported_dockerfiles_are_well_formed() {
    const INSTRUCTIONS: &[&str] = &[
        "FROM",
        "RUN",
        "COPY",
        "ADD",
        "ENV",
        "EXPOSE",
        "USER",
        "WORKDIR",
        "CMD",
        "ENTRYPOINT",
        "HEALTHCHECK",
        "LABEL",
        "ARG",
        "STOPSIGNAL",
        "VOLUME",
        "SHELL",
        "ONBUILD",
    ];
    for runtime in RUNTIMES {
        let path = golden_dir()
            .join("export")
            .join(runtime)
            .join("out/Dockerfile");
        let text = std::fs::read_to_string(&path).unwrap();
        let joined = text.replace("\\\n", " ");
        let lines: Vec<&str> = joined
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        assert!(lines[0].starts_with("FROM "), "{runtime}: {}", lines[0]);
        for line in &lines {
            let instruction = line.split_whitespace().next().unwrap();
            assert!(
                INSTRUCTIONS.contains(&instruction),
                "{runtime}: unknown instruction in {line:?}"
            );
            if let Some(image) = line.strip_prefix("FROM ") {
                let image = image.split_whitespace().next().unwrap();
                assert!(
                    image == "scratch" || image.contains(':'),
                    "{runtime}: unpinned base image {image}"
                );
            }
        }
        let user = lines
            .iter()
            .rev()
            .find(|l| l.starts_with("USER "))
            .unwrap_or_else(|| panic!("{runtime}: no USER"));
        assert!(
            !user.contains("root") && user != &"USER 0",
            "{runtime}: {user}"
        );
        assert!(lines.contains(&"EXPOSE 3000"), "{runtime}: no EXPOSE 3000");
    }
}

/// The exported Python and JavaScript sources parse (with `python3` and `node` when present;
/// the axum template is checked with `cargo check` by hand, as it needs crates.io).
#[test]
fn exported_sources_parse() {
    let checks: [(&str, &[&str], &str); 4] = [
        ("python3", &["-m", "py_compile"], "flask/out/funko.py"),
        ("python3", &["-m", "py_compile"], "flask/out/faaso_app.py"),
        ("node", &["--check"], "express/out/funko.js"),
        ("node", &["--check"], "express/out/faaso-server.js"),
    ];
    // Copies, so that compilers leave nothing (like __pycache__) in the golden folders.
    let scratch = tempfile::tempdir().unwrap();
    for (tool, args, file) in checks {
        let path = scratch.path().join(file.replace('/', "_"));
        std::fs::copy(golden_dir().join("export").join(file), &path).unwrap();
        let Ok(out) = std::process::Command::new(tool)
            .args(args)
            .arg(&path)
            .output()
        else {
            // Under CI the tools are installed: a missing one is a failure, not a skip.
            assert!(
                !matches!(std::env::var("CI").as_deref(), Ok("true" | "1")),
                "{tool} is required under CI=true (syntax check of {file})"
            );
            eprintln!("skipping the syntax check of {file}: {tool} is not installed");
            continue;
        };
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
