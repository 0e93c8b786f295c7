//! Per-funko settings, scaling and limits, as Docker labels: `faaso build` writes the
//! `scaling:` and `limits:` sections of `funko.yml` as image labels, a container label of the same
//! name overrides the image's (Docker merges them into the container's labels), and the gateway
//! reads them from Docker's lists. So `docker run -l faaso.limits.timeout=5s ...` works too.
//!
//! | `funko.yml` | label | default | meaning |
//! |---|---|---|---|
//! | `scaling.min` | `faaso.scale.min` | 1 | fewest instances; 0 allows scale to zero |
//! | `scaling.max` | `faaso.scale.max` | 1 | most instances the gateway may run |
//! | `scaling.idle_timeout` | `faaso.scale.idle_timeout` | `5m` | no request this long: down to `min` |
//! | `scaling.target_inflight` | `faaso.scale.target_inflight` | 10 | in-flight requests per instance aimed at |
//! | `scaling.zero` | `faaso.scale.zero` | `stop` | how idle instances above `min` go: `stop`, or `pause` (frozen, woken in milliseconds) |
//! | `scaling.pause_max` | `faaso.scale.pause_max` | `1h` | a funko paused this long is stopped (its memory freed) |
//! | `limits.max_inflight` | `faaso.limits.max_inflight` | none | most concurrent requests per instance |
//! | `limits.queue_timeout` | `faaso.limits.queue_timeout` | `10s` | longest wait for a free slot, then 429 |
//! | `limits.timeout` | `faaso.limits.timeout` | gateway `read_timeout` | upstream timeout (504) |
//! | `limits.max_body` | `faaso.limits.max_body` | gateway `max_body_bytes` | largest request body (413) |
//! | `async.retries` | `faaso.async.retries` | 3 | an async call's retries after a 5xx, 429 or lost connection |
//! | `async.backoff` | `faaso.async.backoff` | `1s` | wait before the first retry, doubled for each next one |
//! | `async.max_inflight` | `faaso.async.max_inflight` | 10 | most async calls of the funko running at once |
//! | `async.timeout` | `faaso.async.timeout` | `60s` | longest attempt of an async call |
//! | `limits.rate` | `faaso.limits.rate` | none | requests allowed per client (`100/s`, `20/m`, `5/10s`); over it 429 |
//! | `limits.burst` | `faaso.limits.burst` | the rate's count | requests a client may send at once above the rate |
//! | `access` | `faaso.access` | `public` | `private`: every request needs one of the funko's keys |
//! | `domains` | `faaso.domains` | none | host names routed to the funko with the whole path (comma-separated) |
//!
//! A label that cannot be read is reported (the gateway logs it) and left at its default: one bad
//! label never takes a funko out of routing.
//!
//! A funko with any `scaling:` setting is scaled by the gateway within `min..=max`
//! ([`Settings::scales`]); one without keeps the scale it is given by hand (`faaso scale`).

use std::collections::HashMap;
use std::time::Duration;

use crate::units::{format_duration, parse_bytes, parse_duration};

pub const SCALE_MIN: &str = "faaso.scale.min";
pub const SCALE_MAX: &str = "faaso.scale.max";
pub const IDLE_TIMEOUT: &str = "faaso.scale.idle_timeout";
pub const TARGET_INFLIGHT: &str = "faaso.scale.target_inflight";
pub const SCALE_ZERO: &str = "faaso.scale.zero";
pub const PAUSE_MAX: &str = "faaso.scale.pause_max";
pub const MAX_INFLIGHT: &str = "faaso.limits.max_inflight";
pub const QUEUE_TIMEOUT: &str = "faaso.limits.queue_timeout";
pub const TIMEOUT: &str = "faaso.limits.timeout";
pub const MAX_BODY: &str = "faaso.limits.max_body";
pub const ASYNC_RETRIES: &str = "faaso.async.retries";
pub const ASYNC_BACKOFF: &str = "faaso.async.backoff";
pub const ASYNC_MAX_INFLIGHT: &str = "faaso.async.max_inflight";
pub const ASYNC_TIMEOUT: &str = "faaso.async.timeout";
pub const RATE: &str = "faaso.limits.rate";
pub const BURST: &str = "faaso.limits.burst";
pub const ACCESS: &str = "faaso.access";
pub const DOMAINS: &str = "faaso.domains";

/// Defaults of the `scaling:` settings.
pub const DEFAULT_MIN: u32 = 1;
pub const DEFAULT_MAX: u32 = 1;
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_TARGET_INFLIGHT: u32 = 10;
pub const DEFAULT_PAUSE_MAX: Duration = Duration::from_secs(3600);

/// Defaults of the `async:` settings.
pub const DEFAULT_ASYNC_RETRIES: u32 = 3;
pub const DEFAULT_ASYNC_BACKOFF: Duration = Duration::from_secs(1);
pub const DEFAULT_ASYNC_MAX_INFLIGHT: u32 = 10;
pub const DEFAULT_ASYNC_TIMEOUT: Duration = Duration::from_secs(60);

/// A funko's settings; `None` is "not set" (the default applies).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub scale_min: Option<u32>,
    pub scale_max: Option<u32>,
    pub idle_timeout: Option<Duration>,
    pub target_inflight: Option<u32>,
    /// `scaling.zero: pause`: idle instances are paused rather than stopped.
    pub pause: Option<bool>,
    pub pause_max: Option<Duration>,
    pub max_inflight: Option<u32>,
    pub queue_timeout: Option<Duration>,
    pub timeout: Option<Duration>,
    pub max_body: Option<u64>,
    pub async_retries: Option<u32>,
    pub async_backoff: Option<Duration>,
    pub async_max_inflight: Option<u32>,
    pub async_timeout: Option<Duration>,
    /// `limits.rate`: requests per client (per key for a private funko) over a period.
    pub rate: Option<Rate>,
    /// `limits.burst`: requests a client may send at once before the rate applies.
    pub burst: Option<u32>,
    /// `access: private`: requests need one of the funko's keys.
    pub private: Option<bool>,
    /// `domains`: host names (lowercase, checked) whose requests go to this funko.
    pub domains: Option<Vec<String>>,
}

/// A request rate: `count` requests per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    /// Parses `100/s`, `20/m`, `1000/h` or `5/10s`.
    pub fn parse(value: &str) -> Result<Rate, String> {
        let err = || format!("expected a rate like 100/s, 20/m or 5/10s, got {value:?}");
        let (count, per) = value.trim().split_once('/').ok_or_else(err)?;
        let count = count
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(err)?;
        let per = match per.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            other => parse_duration(other).map_err(|_| err())?,
        };
        if per.is_zero() || per > Duration::from_secs(86_400) {
            return Err(format!(
                "{value:?}: the period must be above zero and at most 1 day"
            ));
        }
        Ok(Rate { count, per })
    }

    /// The time one request's share of the rate takes (the period over the count).
    pub fn interval(&self) -> Duration {
        self.per / self.count
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.per == Duration::from_secs(1) {
            write!(f, "{}/s", self.count)
        } else {
            write!(f, "{}/{}", self.count, format_duration(self.per))
        }
    }
}

/// Checks and normalizes a comma-separated list of host names: lowercase letters, digits and
/// `-` in dot-separated labels of 1 to 63 characters, at most 253 in all, no trailing dot, no
/// wildcard, no port, no duplicates.
pub fn parse_domains(value: &str) -> Result<Vec<String>, String> {
    let mut domains: Vec<String> = Vec::new();
    for domain in value.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let domain = domain.to_ascii_lowercase();
        let label_ok = |label: &str| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if domain.len() > 253 || !domain.split('.').all(label_ok) {
            return Err(format!(
                "{domain:?} is not a host name (letters, digits and - in dot-separated labels; \
                 no port, no wildcard)"
            ));
        }
        if !domains.contains(&domain) {
            domains.push(domain);
        }
    }
    if domains.is_empty() {
        return Err("expected one or more host names".to_string());
    }
    Ok(domains)
}

/// A setting that cannot be used, naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {message}")]
pub struct SettingError {
    /// The label, or the `funko.yml` key.
    pub name: String,
    pub message: String,
}

/// Every setting: its label, its `funko.yml` section and key.
const KEYS: &[(&str, &str, &str)] = &[
    (SCALE_MIN, "scaling", "min"),
    (SCALE_MAX, "scaling", "max"),
    (IDLE_TIMEOUT, "scaling", "idle_timeout"),
    (TARGET_INFLIGHT, "scaling", "target_inflight"),
    (SCALE_ZERO, "scaling", "zero"),
    (PAUSE_MAX, "scaling", "pause_max"),
    (MAX_INFLIGHT, "limits", "max_inflight"),
    (QUEUE_TIMEOUT, "limits", "queue_timeout"),
    (TIMEOUT, "limits", "timeout"),
    (MAX_BODY, "limits", "max_body"),
    (ASYNC_RETRIES, "async", "retries"),
    (ASYNC_BACKOFF, "async", "backoff"),
    (ASYNC_MAX_INFLIGHT, "async", "max_inflight"),
    (ASYNC_TIMEOUT, "async", "timeout"),
    (RATE, "limits", "rate"),
    (BURST, "limits", "burst"),
    // Top-level keys of `funko.yml`, set by `funko.rs` rather than from a section.
    (ACCESS, "", "access"),
    (DOMAINS, "", "domains"),
];

/// The `funko.yml` sections that hold settings.
pub const SECTIONS: [&str; 3] = ["scaling", "limits", "async"];

impl Settings {
    /// The settings in a container's (or an image's) labels, and the labels that could not be
    /// read (left unset).
    pub fn from_labels(labels: Option<&HashMap<String, String>>) -> (Settings, Vec<SettingError>) {
        let mut settings = Settings::default();
        let mut errors = Vec::new();
        let Some(labels) = labels else {
            return (settings, errors);
        };
        for (label, _, _) in KEYS {
            if let Some(value) = labels.get(*label)
                && let Err(message) = settings.set(label, value)
            {
                errors.push(SettingError {
                    name: label.to_string(),
                    message,
                });
            }
        }
        if let Err(err) = settings.check() {
            errors.push(err);
            settings.scale_max = None;
        }
        (settings, errors)
    }

    /// The labels that carry these settings (only those that are set), in a stable order.
    pub fn to_labels(&self) -> Vec<(&'static str, String)> {
        let mut labels = Vec::new();
        let mut put = |label: &'static str, value: Option<String>| {
            if let Some(value) = value {
                labels.push((label, value));
            }
        };
        put(SCALE_MIN, self.scale_min.map(|v| v.to_string()));
        put(SCALE_MAX, self.scale_max.map(|v| v.to_string()));
        put(IDLE_TIMEOUT, self.idle_timeout.map(format_duration));
        put(TARGET_INFLIGHT, self.target_inflight.map(|v| v.to_string()));
        put(
            SCALE_ZERO,
            self.pause
                .map(|p| if p { "pause" } else { "stop" }.to_string()),
        );
        put(PAUSE_MAX, self.pause_max.map(format_duration));
        put(MAX_INFLIGHT, self.max_inflight.map(|v| v.to_string()));
        put(QUEUE_TIMEOUT, self.queue_timeout.map(format_duration));
        put(TIMEOUT, self.timeout.map(format_duration));
        put(MAX_BODY, self.max_body.map(|v| v.to_string()));
        put(ASYNC_RETRIES, self.async_retries.map(|v| v.to_string()));
        put(ASYNC_BACKOFF, self.async_backoff.map(format_duration));
        put(
            ASYNC_MAX_INFLIGHT,
            self.async_max_inflight.map(|v| v.to_string()),
        );
        put(ASYNC_TIMEOUT, self.async_timeout.map(format_duration));
        put(RATE, self.rate.map(|r| r.to_string()));
        put(BURST, self.burst.map(|v| v.to_string()));
        put(
            ACCESS,
            self.private
                .map(|p| if p { "private" } else { "public" }.to_string()),
        );
        put(DOMAINS, self.domains.as_ref().map(|d| d.join(",")));
        labels
    }

    /// Sets one setting, by label, from its text.
    pub fn set(&mut self, label: &str, value: &str) -> Result<(), String> {
        let count = |min: u32| {
            value
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= min)
                .ok_or_else(|| format!("expected a whole number from {min} up, got {value:?}"))
        };
        let duration = |allow_zero: bool| {
            parse_duration(value).and_then(|d| {
                if d.is_zero() && !allow_zero {
                    Err(format!("expected a duration above zero, got {value:?}"))
                } else {
                    Ok(d)
                }
            })
        };
        match label {
            SCALE_MIN => self.scale_min = Some(count(0)?),
            SCALE_MAX => self.scale_max = Some(count(1)?),
            IDLE_TIMEOUT => self.idle_timeout = Some(duration(false)?),
            TARGET_INFLIGHT => self.target_inflight = Some(count(1)?),
            SCALE_ZERO => {
                self.pause = Some(match value.trim() {
                    "pause" => true,
                    "stop" => false,
                    _ => return Err(format!("expected pause or stop, got {value:?}")),
                })
            }
            PAUSE_MAX => self.pause_max = Some(duration(false)?),
            MAX_INFLIGHT => self.max_inflight = Some(count(1)?),
            QUEUE_TIMEOUT => self.queue_timeout = Some(duration(true)?),
            TIMEOUT => self.timeout = Some(duration(false)?),
            MAX_BODY => self.max_body = Some(parse_bytes(value)?),
            ASYNC_RETRIES => self.async_retries = Some(count(0)?),
            ASYNC_BACKOFF => self.async_backoff = Some(duration(false)?),
            ASYNC_MAX_INFLIGHT => self.async_max_inflight = Some(count(1)?),
            ASYNC_TIMEOUT => self.async_timeout = Some(duration(false)?),
            RATE => self.rate = Some(Rate::parse(value)?),
            BURST => self.burst = Some(count(1)?),
            ACCESS => {
                self.private = Some(match value.trim() {
                    "private" => true,
                    "public" => false,
                    _ => return Err(format!("expected private or public, got {value:?}")),
                })
            }
            DOMAINS => self.domains = Some(parse_domains(value)?),
            _ => return Err("not a FaaSO setting".to_string()),
        }
        Ok(())
    }

    /// Whether the gateway scales this funko: any `scaling:` setting is set. A funko without
    /// one keeps the scale it is given by hand.
    pub fn scales(&self) -> bool {
        self.scale_min.is_some()
            || self.scale_max.is_some()
            || self.idle_timeout.is_some()
            || self.target_inflight.is_some()
            || self.pause.is_some()
            || self.pause_max.is_some()
    }

    /// Whether idle instances are paused rather than stopped (`scaling.zero: pause`).
    pub fn pauses(&self) -> bool {
        self.pause == Some(true)
    }

    /// `scaling.pause_max`, or its default.
    pub fn pause_max(&self) -> Duration {
        self.pause_max.unwrap_or(DEFAULT_PAUSE_MAX)
    }

    /// `scaling.min`, or its default.
    pub fn min(&self) -> u32 {
        self.scale_min.unwrap_or(DEFAULT_MIN)
    }

    /// `scaling.max`, or its default (never below `min`).
    pub fn max(&self) -> u32 {
        self.scale_max.unwrap_or(DEFAULT_MAX).max(self.min())
    }

    /// `scaling.idle_timeout`, or its default.
    pub fn idle(&self) -> Duration {
        self.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT)
    }

    /// `scaling.target_inflight`, or its default.
    pub fn target(&self) -> u32 {
        self.target_inflight.unwrap_or(DEFAULT_TARGET_INFLIGHT)
    }

    /// `async.retries`, or its default.
    pub fn async_retries(&self) -> u32 {
        self.async_retries.unwrap_or(DEFAULT_ASYNC_RETRIES)
    }

    /// `async.backoff`, or its default.
    pub fn async_backoff(&self) -> Duration {
        self.async_backoff.unwrap_or(DEFAULT_ASYNC_BACKOFF)
    }

    /// `async.max_inflight`, or its default.
    pub fn async_max_inflight(&self) -> u32 {
        self.async_max_inflight
            .unwrap_or(DEFAULT_ASYNC_MAX_INFLIGHT)
    }

    /// `async.timeout`, or its default.
    pub fn async_timeout(&self) -> Duration {
        self.async_timeout.unwrap_or(DEFAULT_ASYNC_TIMEOUT)
    }

    /// Whether requests need one of the funko's keys (`access: private`).
    pub fn is_private(&self) -> bool {
        self.private == Some(true)
    }

    /// `limits.burst`, or its default: the rate's count (a client may use a whole period's
    /// requests at once).
    pub fn burst(&self) -> u32 {
        self.burst
            .or(self.rate.map(|r| r.count))
            .unwrap_or(1)
            .max(1)
    }

    /// Checks the settings against each other: `min` may not be above `max`.
    pub fn check(&self) -> Result<(), SettingError> {
        if let (Some(min), Some(max)) = (self.scale_min, self.scale_max)
            && min > max
        {
            return Err(SettingError {
                name: SCALE_MAX.to_string(),
                message: format!("{max} is below {SCALE_MIN} ({min})"),
            });
        }
        Ok(())
    }

    /// The settings of a `funko.yml`'s [`SECTIONS`] (each a mapping of key to value; numbers
    /// or text), given by section name; the error names the key as `section.key`.
    pub fn from_sections(
        sections: &[(&str, Option<&serde_yaml::Mapping>)],
    ) -> Result<Settings, SettingError> {
        let mut settings = Settings::default();
        for &(section_name, section) in sections {
            let Some(section) = section else { continue };
            for (key, value) in section {
                let key = key.as_str().unwrap_or_default();
                let name = format!("{section_name}.{key}");
                let Some((label, _, _)) = KEYS
                    .iter()
                    .find(|(_, section, k)| *section == section_name && *k == key)
                else {
                    let known: Vec<&str> = KEYS
                        .iter()
                        .filter(|(_, section, _)| *section == section_name)
                        .map(|(_, _, k)| *k)
                        .collect();
                    return Err(SettingError {
                        name,
                        message: format!("unknown setting (known: {})", known.join(", ")),
                    });
                };
                let text = match value {
                    serde_yaml::Value::Number(n) => n.to_string(),
                    serde_yaml::Value::String(s) => s.clone(),
                    _ => {
                        return Err(SettingError {
                            name,
                            message: "expected a number or a text like 5s or 1MiB".to_string(),
                        });
                    }
                };
                settings
                    .set(label, &text)
                    .map_err(|message| SettingError { name, message })?;
            }
        }
        settings.check().map_err(|err| SettingError {
            name: "scaling.max".to_string(),
            message: err.message.replace(SCALE_MIN, "scaling.min"),
        })?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn labels_round_trip() {
        let settings = Settings {
            scale_min: Some(0),
            scale_max: Some(4),
            idle_timeout: Some(Duration::from_secs(120)),
            target_inflight: Some(5),
            pause: Some(true),
            pause_max: Some(Duration::from_secs(600)),
            max_inflight: Some(2),
            queue_timeout: Some(Duration::from_millis(1500)),
            timeout: Some(Duration::from_secs(30)),
            max_body: Some(1 << 20),
            async_retries: Some(5),
            async_backoff: Some(Duration::from_millis(500)),
            async_max_inflight: Some(2),
            async_timeout: Some(Duration::from_secs(90)),
            rate: Some(Rate {
                count: 20,
                per: Duration::from_secs(60),
            }),
            burst: Some(3),
            private: Some(true),
            domains: Some(vec!["a.example.com".to_string()]),
        };
        let written: HashMap<String, String> = settings
            .to_labels()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(written[TIMEOUT], "30s");
        assert_eq!(written[IDLE_TIMEOUT], "2m");
        assert_eq!(written[ASYNC_BACKOFF], "500ms");
        assert_eq!(Settings::from_labels(Some(&written)), (settings, vec![]));
        assert_eq!(
            Settings::from_labels(None),
            (Settings::default(), Vec::new())
        );
    }

    #[test]
    fn bad_labels_are_reported_and_left_unset() {
        let (settings, errors) = Settings::from_labels(Some(&labels(&[
            (TIMEOUT, "soon"),
            (MAX_BODY, "1KiB"),
            (SCALE_MIN, "3"),
            (SCALE_MAX, "2"),
            ("other.label", "x"),
        ])));
        assert_eq!(settings.timeout, None);
        assert_eq!(settings.max_body, Some(1024));
        assert_eq!(settings.scale_min, Some(3));
        assert_eq!(settings.scale_max, None, "max below min is not used");
        let names: Vec<&str> = errors.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, [TIMEOUT, SCALE_MAX]);
        assert!(
            errors[0]
                .to_string()
                .starts_with("faaso.limits.timeout: expected a duration")
        );
    }

    #[test]
    fn rates_access_and_domains() {
        let rate = |text: &str| Rate::parse(text).map(|r| (r.count, r.per));
        assert_eq!(rate("100/s"), Ok((100, Duration::from_secs(1))));
        assert_eq!(rate(" 20 / m "), Ok((20, Duration::from_secs(60))));
        assert_eq!(rate("5/10s"), Ok((5, Duration::from_secs(10))));
        assert_eq!(rate("1000/h"), Ok((1000, Duration::from_secs(3600))));
        for bad in ["100", "0/s", "x/s", "5/", "5/0s", "5/2d"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Rate::parse("50/s").unwrap().interval(),
            Duration::from_millis(20)
        );
        let labels = labels(&[
            (RATE, "5/10s"),
            (ACCESS, "private"),
            (DOMAINS, "API.example.com, b.example.org,api.example.com"),
        ]);
        let (settings, errors) = Settings::from_labels(Some(&labels));
        assert!(errors.is_empty(), "{errors:?}");
        assert!(settings.is_private());
        assert_eq!(
            settings.burst(),
            5,
            "the burst defaults to the rate's count"
        );
        assert_eq!(
            settings.domains.as_deref(),
            Some(&["api.example.com".to_string(), "b.example.org".to_string()][..])
        );
        let round: HashMap<String, String> = settings
            .to_labels()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(Settings::from_labels(Some(&round)).0, settings);
        for bad in [
            "*.example.com",
            "a.example.com:443",
            "-a.com",
            "a..b",
            "a_b.com",
            "",
        ] {
            assert!(parse_domains(bad).is_err(), "{bad:?}");
        }
        let (_, errors) = Settings::from_labels(Some(&labels_of(ACCESS, "secret")));
        assert_eq!(errors[0].name, ACCESS);
    }

    fn labels_of(label: &str, value: &str) -> HashMap<String, String> {
        labels(&[(label, value)])
    }

    #[test]
    fn funko_yml_sections() {
        let yaml: serde_yaml::Mapping = serde_yaml::from_str(
            "scaling: {min: 0, max: 3}\nlimits: {timeout: 5s, max_body: 1MiB}\nasync: {retries: 0, backoff: 250ms}",
        )
        .unwrap();
        let section = |name: &str| yaml.get(name).and_then(|v| v.as_mapping()).cloned();
        let settings = Settings::from_sections(&[
            ("scaling", section("scaling").as_ref()),
            ("limits", section("limits").as_ref()),
            ("async", section("async").as_ref()),
        ])
        .unwrap();
        assert_eq!(settings.scale_min, Some(0));
        assert_eq!(settings.scale_max, Some(3));
        assert_eq!(settings.timeout, Some(Duration::from_secs(5)));
        assert_eq!(settings.max_body, Some(1 << 20));
        assert_eq!(settings.async_retries, Some(0));
        assert_eq!(settings.async_backoff(), Duration::from_millis(250));
        assert_eq!(settings.async_max_inflight(), DEFAULT_ASYNC_MAX_INFLIGHT);

        let bad = |scaling: &str, limits: &str| {
            let scaling: serde_yaml::Mapping = serde_yaml::from_str(scaling).unwrap();
            let limits: serde_yaml::Mapping = serde_yaml::from_str(limits).unwrap();
            Settings::from_sections(&[("scaling", Some(&scaling)), ("limits", Some(&limits))])
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            bad("{mini: 0}", "{}"),
            "scaling.mini: unknown setting (known: min, max, idle_timeout, target_inflight, zero, pause_max)"
        );
        assert!(
            bad("{}", "{timeout: 0s}")
                .starts_with("limits.timeout: expected a duration above zero")
        );
        assert!(bad("{max: 0}", "{}").starts_with("scaling.max: expected a whole number from 1"));
        assert_eq!(
            bad("{min: 3, max: 2}", "{}"),
            "scaling.max: 2 is below scaling.min (3)"
        );
        assert!(bad("{}", "{max_body: [1]}").starts_with("limits.max_body: expected a number"));
    }
}
