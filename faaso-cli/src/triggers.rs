//! Cron triggers: a funko called on a schedule. `funko.yml`'s `triggers:` is a list:
//!
//! ```yaml
//! triggers:
//!   - cron: "*/5 * * * *"     # 5 fields, or 6 with a leading seconds field; UTC
//!     path: /report           # default /
//!     method: POST            # default POST
//!     body: '{"full": true}'  # optional, one line
//!     id: report              # optional; default t1, t2, ... by position
//! ```
//!
//! `faaso build` writes each as image labels `faaso.cron.<id>.schedule|path|method|body`, so
//! `docker run -l faaso.cron.t1.schedule='*/2 * * * * *' ...` makes a trigger too. The gateway
//! reads them with the funko's other labels; each tick becomes an async call of the funko.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use crate::settings::SettingError;

/// Labels of triggers start with this, then `<id>.<field>`.
pub const CRON_PREFIX: &str = "faaso.cron.";

/// Longest trigger id (it is part of a label name).
const MAX_ID: usize = 32;

/// One trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// Names the trigger within its funko: `[a-z0-9_-]`, up to 32 characters.
    pub id: String,
    /// The cron expression as written.
    pub schedule: String,
    /// The funko path a tick calls, from `/`.
    pub path: String,
    pub method: String,
    pub body: Option<String>,
}

/// A parsed cron expression.
#[derive(Debug, Clone)]
pub struct Schedule(croner::Cron);

impl Schedule {
    /// Parses 5 fields (minute granularity) or 6 with a leading seconds field, and aliases
    /// such as `@hourly`.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let fields = text.split_whitespace().count();
        if !text.trim_start().starts_with('@') && !(5..=6).contains(&fields) {
            return Err(format!(
                "expected 5 fields (minute hour day month weekday) or 6 with seconds first, got {fields} in {text:?}"
            ));
        }
        croner::parser::CronParser::builder()
            .year(croner::parser::Year::Disallowed)
            .build()
            .parse(text)
            .map(Schedule)
            .map_err(|err| format!("{text:?} is not a cron expression: {err}"))
    }

    /// The first tick strictly after `after`, if there is one.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.0.find_next_occurrence(&after, false).ok()
    }
}

impl Trigger {
    /// Checks one trigger: its id, schedule, path, method and body.
    pub fn check(&self) -> Result<(), String> {
        check_id(&self.id)?;
        Schedule::parse(&self.schedule)?;
        if !self.path.starts_with('/') || self.path.chars().any(|c| c.is_whitespace()) {
            return Err(format!(
                "path {:?} must start with / and have no spaces",
                self.path
            ));
        }
        let method = http_method(&self.method)?;
        if method != self.method {
            return Err(format!("method {:?}: write it as {method}", self.method));
        }
        if self
            .body
            .as_deref()
            .is_some_and(|b| b.contains(['\n', '\r']))
        {
            return Err("body must be one line (a label value)".to_string());
        }
        Ok(())
    }

    /// The labels that carry this trigger.
    pub fn to_labels(&self) -> Vec<(String, String)> {
        let key = |field: &str| format!("{CRON_PREFIX}{}.{field}", self.id);
        let mut labels = vec![
            (key("schedule"), self.schedule.clone()),
            (key("path"), self.path.clone()),
            (key("method"), self.method.clone()),
        ];
        if let Some(body) = &self.body {
            labels.push((key("body"), body.clone()));
        }
        labels
    }

    /// The triggers in a container's (or image's) labels, by id, and the ones that cannot be
    /// used (named by their label).
    pub fn from_labels(
        labels: Option<&HashMap<String, String>>,
    ) -> (Vec<Trigger>, Vec<SettingError>) {
        let mut fields: BTreeMap<&str, HashMap<&str, &str>> = BTreeMap::new();
        for (label, value) in labels.into_iter().flatten() {
            let Some(rest) = label.strip_prefix(CRON_PREFIX) else {
                continue;
            };
            let (id, field) = rest.rsplit_once('.').unwrap_or((rest, ""));
            fields.entry(id).or_default().insert(field, value);
        }
        let mut triggers = Vec::new();
        let mut errors = Vec::new();
        for (id, fields) in fields {
            let error = |message: String| SettingError {
                name: format!("{CRON_PREFIX}{id}"),
                message,
            };
            if let Some(unknown) = fields
                .keys()
                .find(|f| !["schedule", "path", "method", "body"].contains(f))
            {
                errors.push(error(format!(
                    "unknown field {unknown:?} (known: schedule, path, method, body)"
                )));
                continue;
            }
            let Some(schedule) = fields.get("schedule") else {
                errors.push(error("has no schedule label".to_string()));
                continue;
            };
            let trigger = Trigger {
                id: id.to_string(),
                schedule: schedule.to_string(),
                path: fields.get("path").unwrap_or(&"/").to_string(),
                method: fields.get("method").unwrap_or(&"POST").to_ascii_uppercase(),
                body: fields.get("body").map(|b| b.to_string()),
            };
            match trigger.check() {
                Ok(()) => triggers.push(trigger),
                Err(message) => errors.push(error(message)),
            }
        }
        (triggers, errors)
    }

    /// The triggers of `funko.yml`'s `triggers:` (a list); the error names the entry as
    /// `triggers[<n>]` (from 0) and what is wrong with it.
    pub fn from_yaml(value: Option<&serde_yaml::Value>) -> Result<Vec<Trigger>, SettingError> {
        let list = match value {
            None | Some(serde_yaml::Value::Null) => return Ok(Vec::new()),
            Some(serde_yaml::Value::Sequence(list)) => list,
            Some(_) => {
                return Err(SettingError {
                    name: "triggers".to_string(),
                    message: "expected a list of triggers (each with cron:, path:, ...)"
                        .to_string(),
                });
            }
        };
        let mut triggers: Vec<Trigger> = Vec::new();
        for (n, entry) in list.iter().enumerate() {
            let error = |message: String| SettingError {
                name: format!("triggers[{n}]"),
                message,
            };
            let Some(entry) = entry.as_mapping() else {
                return Err(error(
                    "expected a mapping with cron:, path:, ...".to_string(),
                ));
            };
            let mut text = HashMap::new();
            for (key, value) in entry {
                let key = key.as_str().unwrap_or_default();
                if !["cron", "path", "method", "body", "id"].contains(&key) {
                    return Err(error(format!(
                        "unknown key {key:?} (known: cron, path, method, body, id)"
                    )));
                }
                let value = match value {
                    serde_yaml::Value::String(s) => s.clone(),
                    serde_yaml::Value::Number(n) => n.to_string(),
                    serde_yaml::Value::Bool(b) => b.to_string(),
                    _ => return Err(error(format!("{key}: expected text"))),
                };
                text.insert(key, value);
            }
            let Some(schedule) = text.remove("cron") else {
                return Err(error("needs cron: (a cron expression)".to_string()));
            };
            let trigger = Trigger {
                id: text.remove("id").unwrap_or_else(|| format!("t{}", n + 1)),
                schedule,
                path: text.remove("path").unwrap_or_else(|| "/".to_string()),
                method: text
                    .remove("method")
                    .unwrap_or_else(|| "POST".to_string())
                    .to_ascii_uppercase(),
                body: text.remove("body"),
            };
            trigger.check().map_err(error)?;
            if triggers.iter().any(|t| t.id == trigger.id) {
                return Err(error(format!("id {:?} is used twice", trigger.id)));
            }
            triggers.push(trigger);
        }
        Ok(triggers)
    }
}

fn check_id(id: &str) -> Result<(), String> {
    let valid = !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "id {id:?} must be 1 to {MAX_ID} of a-z, 0-9, _ and -"
        ))
    }
}

/// The method in upper case, when a tick may use it.
fn http_method(method: &str) -> Result<String, String> {
    let upper = method.to_ascii_uppercase();
    let token = !upper.is_empty() && upper.bytes().all(|b| b.is_ascii_uppercase());
    if !token || upper == "CONNECT" || upper == "TRACE" {
        return Err(format!("method {method:?} cannot be used for a tick"));
    }
    Ok(upper)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Result<Vec<Trigger>, String> {
        let value: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
        Trigger::from_yaml(value.get("triggers")).map_err(|e| e.to_string())
    }

    #[test]
    fn triggers_round_trip_through_labels() {
        let triggers = yaml(
            "triggers:\n  - cron: '*/2 * * * * *'\n    path: /tick\n    body: '{\"a\": 1}'\n  - cron: '@hourly'\n    id: hourly\n    method: get\n",
        )
        .unwrap();
        assert_eq!(triggers.len(), 2);
        assert_eq!(triggers[0].id, "t1");
        assert_eq!(triggers[0].method, "POST");
        assert_eq!(triggers[1].id, "hourly");
        assert_eq!(triggers[1].method, "GET");
        assert_eq!(triggers[1].path, "/");
        let labels: HashMap<String, String> =
            triggers.iter().flat_map(Trigger::to_labels).collect();
        assert_eq!(labels["faaso.cron.t1.schedule"], "*/2 * * * * *");
        let (read, errors) = Trigger::from_labels(Some(&labels));
        assert!(errors.is_empty(), "{errors:?}");
        let mut expected = triggers.clone();
        expected.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(read, expected);
    }

    #[test]
    fn bad_triggers_name_the_entry() {
        assert_eq!(
            yaml("triggers:\n  - path: /x\n").unwrap_err(),
            "triggers[0]: needs cron: (a cron expression)"
        );
        assert!(
            yaml("triggers:\n  - cron: '* * *'\n")
                .unwrap_err()
                .starts_with("triggers[0]: expected 5 fields")
        );
        assert!(
            yaml("triggers:\n  - cron: '61 * * * *'\n")
                .unwrap_err()
                .contains("is not a cron expression")
        );
        assert!(
            yaml("triggers:\n  - cron: '* * * * *'\n    path: nope\n")
                .unwrap_err()
                .contains("must start with /")
        );
        assert!(
            yaml("triggers:\n  - cron: '* * * * *'\n    id: Big\n")
                .unwrap_err()
                .contains("id \"Big\"")
        );
        assert!(
            yaml("triggers:\n  - cron: '* * * * *'\n    when: now\n")
                .unwrap_err()
                .contains("unknown key \"when\"")
        );
        assert!(
            yaml("triggers:\n  - {cron: '* * * * *', id: a}\n  - {cron: '* * * * *', id: a}\n")
                .unwrap_err()
                .starts_with("triggers[1]: id \"a\" is used twice")
        );
        assert!(
            yaml("triggers: {a: 1}\n")
                .unwrap_err()
                .starts_with("triggers:")
        );
        assert_eq!(yaml("name: x\n").unwrap(), []);
    }

    #[test]
    fn bad_labels_are_reported_and_skipped() {
        let labels: HashMap<String, String> = [
            ("faaso.cron.ok.schedule", "0 * * * *"),
            ("faaso.cron.nosched.path", "/x"),
            ("faaso.cron.bad.schedule", "every minute"),
            ("faaso.cron.odd.schedule", "* * * * *"),
            ("faaso.cron.odd.colour", "red"),
            ("faaso.scale.min", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (triggers, errors) = Trigger::from_labels(Some(&labels));
        assert_eq!(triggers.len(), 1);
        assert_eq!(triggers[0].method, "POST");
        let names: Vec<&str> = errors.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            ["faaso.cron.bad", "faaso.cron.nosched", "faaso.cron.odd"]
        );
    }

    #[test]
    fn schedules_with_and_without_seconds() {
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc)
        };
        let every_two = Schedule::parse("*/2 * * * * *").unwrap();
        assert_eq!(
            every_two.next_after(at("2026-12-04T10:00:01Z")),
            Some(at("2026-12-04T10:00:02Z"))
        );
        assert_eq!(
            every_two.next_after(at("2026-12-04T10:00:02Z")),
            Some(at("2026-12-04T10:00:04Z")),
            "strictly after"
        );
        let quarter = Schedule::parse("15 3 * * 1").unwrap();
        // 2026-12-04 is a Friday: the next Monday is the 7th.
        assert_eq!(
            quarter.next_after(at("2026-12-04T10:00:00Z")),
            Some(at("2026-12-07T03:15:00Z"))
        );
        assert!(
            Schedule::parse("* * * * * * 2027").is_err(),
            "no year field"
        );
    }
}
