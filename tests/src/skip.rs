//! Skipped tests are never silent: [`skip`] prints the reason and appends it to
//! `target/test-skips.log`, which `.ci/run` empties before the tests and prints (with a count)
//! after them. Under `CI=true` a test that needs Docker or a tool fails instead of skipping; what
//! may still skip there is listed (for example builds that need a base image from a registry).

use std::io::Write;

/// The log of skipped tests of this run.
pub fn log_path() -> std::path::PathBuf {
    crate::bins::target_dir().join("test-skips.log")
}

/// Records that `test` is skipped, and why.
pub fn skip(test: &str, reason: &str) {
    eprintln!("skipping {test}: {reason}");
    let line = format!("{test}: {reason}\n");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path())
        .and_then(|mut file| file.write_all(line.as_bytes()));
    if let Err(err) = written {
        eprintln!(
            "(cannot record the skip in {}: {err})",
            log_path().display()
        );
    }
}
