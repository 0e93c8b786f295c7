//! The naming conventions that make up FaaSO's whole "protocol" with Docker: funko names, image
//! names, instance container names, the network, the port and the labels.
//!
//! Everything here is pure so that the CLI, the builder and the gateway's discovery agree on one
//! definition, and so that a user can reproduce any of it with plain `docker` commands.

use std::fmt;

/// The Docker network every instance is attached to.
pub const NETWORK: &str = "faaso-net";
/// The port a funko listens on inside its container, unless [`PORT_LABEL`] says otherwise.
pub const DEFAULT_PORT: u16 = 3000;
/// Container label that overrides [`DEFAULT_PORT`].
pub const PORT_LABEL: &str = "faaso.port";

/// A container label that turns the gateway's active `GET /ping` checks off for an instance
/// (`faaso.healthcheck=off`): for a container that cannot answer `/ping`; Docker's own
/// `HEALTHCHECK` and failed connections still count.
pub const HEALTHCHECK_LABEL: &str = "faaso.healthcheck";

/// Whether the gateway checks an instance with these labels (not `faaso.healthcheck=off`).
pub fn active_checks(labels: Option<&std::collections::HashMap<String, String>>) -> bool {
    labels
        .and_then(|labels| labels.get(HEALTHCHECK_LABEL))
        .is_none_or(|value| !value.trim().eq_ignore_ascii_case("off"))
}

/// The port an instance listens on: its `faaso.port` label (a container's labels include its
/// image's), else [`DEFAULT_PORT`].
pub fn instance_port(labels: Option<&std::collections::HashMap<String, String>>) -> u16 {
    labels
        .and_then(|labels| labels.get(PORT_LABEL))
        .and_then(|port| port.trim().parse::<u16>().ok())
        .filter(|port| *port != 0)
        .unwrap_or(DEFAULT_PORT)
}
/// A container label that makes an instance part of a canary release: the share of the funko's
/// requests (1 to 99 %) its canary instances get together (`faaso deploy --canary 20`, or
/// `docker run -l faaso.canary=20 ...` beside the serving instances).
pub const CANARY_LABEL: &str = "faaso.canary";
/// With `faaso.canary`: `true` sends each client to one release, by a hash of its address.
pub const CANARY_STICKY_LABEL: &str = "faaso.canary.sticky";

/// A canary instance's share and stickiness, from its labels; `None` for an instance that is
/// not a canary (or whose share is not a whole number from 1 to 99).
pub fn canary(labels: Option<&std::collections::HashMap<String, String>>) -> Option<(u8, bool)> {
    let labels = labels?;
    let percent = labels
        .get(CANARY_LABEL)?
        .trim()
        .trim_end_matches('%')
        .parse::<u8>()
        .ok()
        .filter(|p| (1..=99).contains(p))?;
    let sticky = labels
        .get(CANARY_STICKY_LABEL)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    Some((percent, sticky))
}

/// A container label marking a ready container: created from the funko's image but not
/// started, kept for a funko at zero (`scaling.min: 0`, `zero: stop`) so that a wake starts it
/// instead of creating one.
pub const READY_LABEL: &str = "faaso.ready";

/// Container label naming the funko (set by FaaSO; discovery does not require it).
pub const FUNKO_LABEL: &str = "faaso.funko";
/// Container label marking containers FaaSO created.
pub const MANAGED_LABEL: &str = "faaso.managed";
/// The gateway's own container name; never a funko.
pub const PROXY_CONTAINER: &str = "faaso-proxy";
/// Prefix of images and containers.
pub const PREFIX: &str = "faaso-";
/// Length of the random suffix in instance names.
pub const SUFFIX_LEN: usize = 6;
/// Longest funko name.
pub const MAX_NAME_LEN: usize = 48;

/// Names no funko can have, so that FaaSO's own images and containers are never taken for
/// funkos: the gateway's image is `faaso-gateway` and its container `faaso-proxy`.
pub const RESERVED_NAMES: [&str; 2] = ["gateway", "proxy"];

/// Why a funko name was refused; the message states the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid funko name {name:?}: {}", name_rule(.name))]
pub struct InvalidName {
    pub name: String,
}

/// The rule a refused name broke.
fn name_rule(name: &str) -> &'static str {
    if RESERVED_NAMES.contains(&name) {
        "gateway and proxy are reserved (FaaSO's own image faaso-gateway and container \
         faaso-proxy)"
    } else {
        "use 1 to 48 characters from a-z, 0-9 and _, starting with a letter or digit (Docker \
         image names are lowercase; `-` separates the instance suffix)"
    }
}

/// Checks a funko name against `^[a-z0-9][a-z0-9_]{0,47}$`.
pub fn validate_name(name: &str) -> Result<(), InvalidName> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(InvalidName {
            name: name.to_string(),
        })
    }
}

/// Whether `name` matches `^[a-z0-9][a-z0-9_]{0,47}$` and is not reserved
/// ([`RESERVED_NAMES`]).
pub fn is_valid_name(name: &str) -> bool {
    if RESERVED_NAMES.contains(&name) {
        return false;
    }
    let bytes = name.as_bytes();
    match bytes.first() {
        Some(first) if first.is_ascii_lowercase() || first.is_ascii_digit() => {}
        _ => return false,
    }
    bytes.len() <= MAX_NAME_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
}

/// The funko of an image tag `faaso-<name>:<tag>` (or `faaso-<name>`); `None` for other
/// images, including those of a registry (`host:5000/faaso-x`).
pub fn funko_of_image(tag: &str) -> Option<&str> {
    let repo = tag.rsplit_once(':').map_or(tag, |(repo, _)| repo);
    let name = repo.strip_prefix(PREFIX)?;
    is_valid_name(name).then_some(name)
}

/// The known name closest to a mistyped `name`, to suggest it: within an edit distance of a
/// third of the name's length (at least 1); the first of equally close ones.
pub fn nearest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    known
        .into_iter()
        .filter(|candidate| *candidate != name)
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance (insertions, deletions, substitutions), on characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

/// `; did you mean <name>?` after a message about a funko that does not exist, when a known
/// name is close; empty otherwise.
pub fn did_you_mean<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    nearest(name, known).map_or_else(String::new, |n| format!("; did you mean {n}?"))
}

/// The image repository of a funko: `faaso-<name>`.
pub fn image_repo(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// The image a funko's instances run: `faaso-<name>:latest`.
pub fn image_latest(name: &str) -> String {
    format!("{PREFIX}{name}:latest")
}

/// A container name that follows the instance convention, split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceName<'a> {
    /// The funko the container belongs to.
    pub funko: &'a str,
    /// The 6-character suffix, or `None` for a bare `faaso-<name>` container.
    pub suffix: Option<&'a str>,
}

impl fmt::Display for InstanceName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.suffix {
            Some(suffix) => write!(f, "{PREFIX}{}-{suffix}", self.funko),
            None => write!(f, "{PREFIX}{}", self.funko),
        }
    }
}

/// Parses a container name (with or without Docker's leading `/`) as an instance name:
/// `faaso-<name>-<suffix>` or exactly `faaso-<name>`. `faaso-proxy` is never an instance.
pub fn parse_instance_name(container: &str) -> Option<InstanceName<'_>> {
    let container = container.strip_prefix('/').unwrap_or(container);
    if container == PROXY_CONTAINER {
        return None;
    }
    let rest = container.strip_prefix(PREFIX)?;
    let (funko, suffix) = match rest.split_once('-') {
        Some((funko, suffix)) => {
            let suffix_ok = suffix.len() == SUFFIX_LEN
                && suffix
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            if !suffix_ok {
                return None;
            }
            (funko, Some(suffix))
        }
        None => (rest, None),
    };
    is_valid_name(funko).then_some(InstanceName { funko, suffix })
}

/// The container name of a new instance of `funko` with the given suffix.
pub fn instance_name(funko: &str, suffix: &str) -> String {
    format!("{PREFIX}{funko}-{suffix}")
}

/// A fresh random instance suffix: 6 characters from `[a-z0-9]`.
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..SUFFIX_LEN)
        .map(|_| char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_near_name_is_suggested() {
        let known = ["hello", "hello_world", "orders", "ab"];
        assert_eq!(nearest("helo", known), Some("hello"));
        assert_eq!(nearest("order", known), Some("orders"));
        assert_eq!(nearest("hello_wrld", known), Some("hello_world"));
        assert_eq!(nearest("billing", known), None);
        assert_eq!(nearest("hello", known), None, "not itself");
        assert_eq!(
            nearest("xy", known),
            None,
            "two letters apart is too far for two"
        );
        assert_eq!(did_you_mean("helo", known), "; did you mean hello?");
        assert_eq!(did_you_mean("zzz", known), "");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn names_follow_the_regex() {
        for good in ["a", "hello", "hello_world", "0abc", &"a".repeat(48)] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in ["", "_a", "Hello", "a-b", "a.b", "é", &"a".repeat(49)] {
            assert!(!is_valid_name(bad), "{bad}");
        }
        // FaaSO's own image and container are never funkos.
        assert_eq!(funko_of_image("faaso-gateway:latest"), None);
        assert!(parse_instance_name("faaso-proxy").is_none());
        let err = validate_name("gateway").unwrap_err().to_string();
        assert!(err.contains("reserved"), "{err}");
        let err = validate_name("Bad-Name").unwrap_err().to_string();
        assert!(
            err.contains("\"Bad-Name\"") && err.contains("a-z, 0-9 and _"),
            "{err}"
        );
    }

    #[test]
    fn instance_names_parse() {
        let parsed = parse_instance_name("/faaso-hello-ab12cd").unwrap();
        assert_eq!(parsed.funko, "hello");
        assert_eq!(parsed.suffix, Some("ab12cd"));
        assert_eq!(parsed.to_string(), "faaso-hello-ab12cd");
        let bare = parse_instance_name("faaso-hello_2").unwrap();
        assert_eq!((bare.funko, bare.suffix), ("hello_2", None));
        for not_instance in [
            "faaso-proxy",
            "/faaso-proxy",
            "faaso-",
            "faaso-hello-abc",
            "faaso-hello-ABCDEF",
            "faaso-hello-abcdefg",
            "faaso-a-b-cdefgh",
            "other",
            "faaso-Hello",
        ] {
            assert_eq!(parse_instance_name(not_instance), None, "{not_instance}");
        }
    }

    #[test]
    fn random_suffixes_are_valid_and_differ() {
        let a = random_suffix();
        let b = random_suffix();
        assert_ne!(a, b);
        let name = instance_name("hello", &a);
        assert_eq!(parse_instance_name(&name).unwrap().suffix, Some(a.as_str()));
        assert_eq!(image_latest("hello"), "faaso-hello:latest");
        assert_eq!(image_repo("hello"), "faaso-hello");
    }

    #[test]
    fn labels_set_the_port_and_the_checks() {
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<std::collections::HashMap<_, _>>()
        };
        assert_eq!(instance_port(None), DEFAULT_PORT);
        assert_eq!(instance_port(Some(&labels(&[(PORT_LABEL, "8080")]))), 8080);
        assert_eq!(
            instance_port(Some(&labels(&[(PORT_LABEL, "0")]))),
            DEFAULT_PORT
        );
        assert_eq!(
            instance_port(Some(&labels(&[(PORT_LABEL, "x")]))),
            DEFAULT_PORT
        );
        assert!(active_checks(None));
        assert!(!active_checks(Some(&labels(&[(HEALTHCHECK_LABEL, "OFF")]))));
        assert!(active_checks(Some(&labels(&[(HEALTHCHECK_LABEL, "on")]))));
    }
}

/// Properties, over many generated inputs (`PROPTEST_CASES`, 256 by default).
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// The naming rule, written as the spec states it.
    fn rule(name: &str) -> bool {
        let mut chars = name.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
            && name.len() <= 48
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && name != "gateway"
            && name != "proxy"
    }

    proptest! {
        #[test]
        fn funko_names_follow_the_rule(name in "\\PC{0,60}|[a-z0-9_]{0,60}") {
            prop_assert_eq!(is_valid_name(&name), rule(&name));
            prop_assert_eq!(validate_name(&name).is_ok(), rule(&name));
        }

        #[test]
        fn instance_names_round_trip(funko in "[a-z0-9][a-z0-9_]{0,47}", suffix in "[a-z0-9]{6}") {
            let name = instance_name(&funko, &suffix);
            let parsed = parse_instance_name(&name).unwrap();
            prop_assert_eq!(parsed.funko, funko.as_str());
            prop_assert_eq!(parsed.suffix, Some(suffix.as_str()));
            let docker_form = format!("/{name}");
            prop_assert_eq!(parse_instance_name(&docker_form), Some(parsed));
        }

        #[test]
        fn anything_else_is_not_an_instance(text in "\\PC{0,70}") {
            if let Some(parsed) = parse_instance_name(&text) {
                // Whatever parses prints back to the same name.
                prop_assert_eq!(parsed.to_string(), text.trim_start_matches('/'));
                prop_assert!(is_valid_name(parsed.funko));
            }
        }
    }
}
