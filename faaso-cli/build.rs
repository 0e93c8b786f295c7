//! Embeds the built-in runtimes (`../runtimes/<name>/...`) in the library: generates a table
//! of `(path, include_bytes!(...))` so the `faaso` binary carries them and needs no install
//! folder.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let runtimes = manifest_dir.join("../runtimes");
    println!("cargo:rerun-if-changed={}", runtimes.display());
    let mut files = Vec::new();
    collect(&runtimes, &runtimes, &mut files);
    files.sort();
    let mut out =
        String::from("/// Every file of the built-in runtimes: path below `runtimes/`, content.\n");
    out.push_str("pub static FILES: &[(&str, &[u8])] = &[\n");
    for (relative, absolute) in &files {
        writeln!(out, "    ({relative:?}, include_bytes!({absolute:?})),").expect("string write");
    }
    out.push_str("];\n");
    let dest =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("runtimes.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            collect(root, &path, files);
        } else if kind.is_file() {
            let relative = path
                .strip_prefix(root)
                .expect("below root")
                .to_string_lossy()
                .replace('\\', "/");
            // Only runtime folders: skip runtimes/README.md.
            if relative.contains('/') {
                files.push((relative, path.display().to_string()));
            }
        }
    }
}
