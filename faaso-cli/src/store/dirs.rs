//! Where FaaSO keeps data on the host: secrets and saved state. The CLI's local mode and the
//! gateway use the same defaults so that both agree about a funko's secrets and scale.
//!
//! Environment lookups go through a function argument so tests never touch the real environment.

use std::path::PathBuf;

/// `$XDG_DATA_HOME/faaso`, else `$HOME/.local/share/faaso`, else `/var/lib/faaso`.
pub fn data_dir(env: impl Fn(&str) -> Option<String>) -> PathBuf {
    let non_empty = |key| env(key).filter(|v: &String| !v.is_empty());
    if let Some(xdg) = non_empty("XDG_DATA_HOME") {
        return PathBuf::from(xdg).join("faaso");
    }
    if let Some(home) = non_empty("HOME") {
        return PathBuf::from(home).join(".local/share/faaso");
    }
    PathBuf::from("/var/lib/faaso")
}

/// Default secrets directory: `<data_dir>/secrets` (env `FAASO_SECRETS_DIR` overrides).
pub fn secrets_dir(env: impl Fn(&str) -> Option<String>) -> PathBuf {
    match env("FAASO_SECRETS_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => data_dir(env).join("secrets"),
    }
}

/// Default state directory: `<data_dir>/state` (env `FAASO_STATE_DIR` overrides).
pub fn state_dir(env: impl Fn(&str) -> Option<String>) -> PathBuf {
    match env("FAASO_STATE_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => data_dir(env).join("state"),
    }
}

/// The process environment as a lookup function.
pub fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn xdg_then_home_then_system() {
        let xdg = env(&[("XDG_DATA_HOME", "/x"), ("HOME", "/h")]);
        assert_eq!(secrets_dir(&xdg), PathBuf::from("/x/faaso/secrets"));
        let home = env(&[("HOME", "/h")]);
        assert_eq!(
            state_dir(&home),
            PathBuf::from("/h/.local/share/faaso/state")
        );
        assert_eq!(data_dir(env(&[])), PathBuf::from("/var/lib/faaso"));
        let explicit = env(&[("HOME", "/h"), ("FAASO_SECRETS_DIR", "/s")]);
        assert_eq!(secrets_dir(&explicit), PathBuf::from("/s"));
    }
}
