//! The web UI's pages: Handlebars templates compiled into the binary, and the data each page
//! renders, built from plain values so that rendering is a pure function (tested without a
//! gateway, measured in `benches/ui.rs`).
//!
//! Handlebars escapes every `{{value}}` for HTML; nothing is rendered unescaped.

use std::time::SystemTime;

use faaso::engine::status::{FunkoStatus, human_age};
use handlebars::Handlebars;
use serde::Serialize;
use serde_json::{Value, json};

use super::stats::{Summary, sparkline};

/// The templates, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("layout", include_str!("templates/layout.hbs")),
    ("login", include_str!("templates/login.hbs")),
    ("overview", include_str!("templates/overview.hbs")),
    ("funkos", include_str!("templates/funkos.hbs")),
    ("funko", include_str!("templates/funko.hbs")),
    ("logs", include_str!("templates/logs.hbs")),
    ("secrets", include_str!("templates/secrets.hbs")),
    ("secret_delete", include_str!("templates/secret_delete.hbs")),
    ("key", include_str!("templates/key.hbs")),
    ("system", include_str!("templates/system.hbs")),
    ("operation", include_str!("templates/operation.hbs")),
    ("message", include_str!("templates/message.hbs")),
];

/// Where a streamed operation's lines go in the `operation` page.
pub const STREAM_MARK: &str = "<!--stream-->";

/// The embedded stylesheet and script.
pub const STYLE: &str = include_str!("assets/style.css");
pub const SCRIPT: &str = include_str!("assets/app.js");

/// The compiled templates.
pub struct Pages {
    registry: Handlebars<'static>,
    /// A digest of the assets, appended to their URLs so browsers may cache them for good.
    pub asset_version: String,
}

/// What every page's layout needs.
#[derive(Debug, Clone, Serialize)]
pub struct Frame<'a> {
    pub title: &'a str,
    /// The highlighted navigation entry (`funkos`, `secrets`, `system`, or empty).
    pub nav: &'a str,
    /// The session's CSRF token; empty when logged out (then the navigation is hidden).
    pub csrf: &'a str,
}

impl Pages {
    pub fn new() -> Result<Pages, handlebars::TemplateError> {
        let mut registry = Handlebars::new();
        registry.set_prevent_indent(true);
        for (name, text) in TEMPLATES {
            registry.register_template_string(name, *text)?;
        }
        let asset_version = {
            use blake2::{Blake2b512, Digest};
            let digest = Blake2b512::new()
                .chain_update(STYLE)
                .chain_update(SCRIPT)
                .finalize();
            digest[..6].iter().map(|b| format!("{b:02x}")).collect()
        };
        Ok(Pages {
            registry,
            asset_version,
        })
    }

    /// Renders the page `name` with the frame and the page's own data (an object).
    pub fn render(&self, name: &str, frame: &Frame<'_>, data: Value) -> Result<String, String> {
        let mut root = match data {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        root.insert("title".into(), json!(frame.title));
        root.insert("nav".into(), json!(frame.nav));
        root.insert("csrf".into(), json!(frame.csrf));
        root.insert("version".into(), json!(faaso::VERSION));
        root.insert("asset_version".into(), json!(self.asset_version));
        self.registry
            .render(name, &Value::Object(root))
            .map_err(|err| format!("page {name}: {err}"))
    }

    /// Renders only the funkos table of the overview (what the page refreshes itself with).
    pub fn render_part(&self, name: &str, data: &Value) -> Result<String, String> {
        self.registry
            .render(name, data)
            .map_err(|err| format!("page part {name}: {err}"))
    }
}

/// The overview's data: every funko with its instances and recent traffic.
pub fn overview(
    statuses: &[FunkoStatus],
    traffic: &dyn Fn(&str) -> Option<Summary>,
    metrics_on: bool,
    waiting: bool,
) -> Value {
    let mut running_total = 0;
    let funkos: Vec<Value> = statuses
        .iter()
        .map(|status| {
            running_total += status.running;
            let summary = traffic(&status.name);
            let (rate, errors, p99, spark, spark_max) = match &summary {
                Some(s) => (
                    format_rate(s.rate),
                    s.error_share.map_or("–".to_string(), format_share),
                    s.p99.map_or("–".to_string(), format_seconds),
                    sparkline(&s.rates, super::stats::KEPT - 1, 100.0, 20.0),
                    format_rate(s.rates.iter().copied().fold(0.0, f64::max)),
                ),
                None => (
                    "–".to_string(),
                    "–".to_string(),
                    "–".to_string(),
                    String::new(),
                    String::new(),
                ),
            };
            json!({
                "name": status.name,
                "scale": status.scale.map_or("–".to_string(), |s| s.to_string()),
                "running": status.running,
                "problem": status.problem,
                "instances": instances(status),
                "rate": rate,
                "errors": errors,
                "p99": p99,
                "spark": spark,
                "spark_max": spark_max,
            })
        })
        .collect();
    json!({
        "funko_count": funkos.len(),
        "running_total": running_total,
        "funkos": funkos,
        "metrics_off": !metrics_on,
        "waiting": waiting,
        "rate_note": if metrics_on { "req/s over the last minute; 5xx share and p99 over 5 minutes" } else { "" },
    })
}

/// One funko's page data.
/// A funko's recent async calls, for its page's table.
pub fn calls(calls: &[crate::calls::record::Record]) -> Value {
    let now = unix_now();
    let rows: Vec<Value> = calls
        .iter()
        .map(|call| {
            json!({
                "id": call.call_id.to_string(),
                "state": call.state,
                "attempts": call.attempts,
                "status": call.last_status,
                "source": call.source,
                "callback": call.callback,
                "age": human_age((now - (call.accepted_at_ms / 1000) as i64).max(0)),
            })
        })
        .collect();
    json!(rows)
}

/// A funko's keys for its page: names and ages, never values.
pub fn keys(keys: &[faaso::store::keys::KeyInfo]) -> Value {
    let now = unix_now();
    let rows: Vec<Value> = keys
        .iter()
        .map(|key| {
            json!({
                "name": key.name,
                "age": human_age((now - key.created as i64).max(0)),
            })
        })
        .collect();
    json!(rows)
}

pub fn funko(status: &FunkoStatus) -> Value {
    let now = unix_now();
    let images: Vec<Value> = status
        .images
        .iter()
        .map(|image| {
            json!({
                "id": image.id,
                "tags": image.tags,
                "age": human_age((now - image.created).max(0)),
            })
        })
        .collect();
    json!({
        "name": status.name,
        "private": status.private,
        "domains": status.domains,
        "refused_domains": status.refused_domains,
        "canary": status.canary.as_ref().map(|c| json!({
            "percent": c.percent,
            "rest": 100 - u32::from(c.percent),
            "sticky": c.sticky,
            "image": c.image,
            "instances": c.instances,
        })),
        "scale": status.scale.map_or("not set".to_string(), |s| s.to_string()),
        "scale_value": status.scale.unwrap_or(status.running as u32),
        "running": status.running,
        "scaling": status.scaling.as_ref().map(|s| json!({
            "min": s.min,
            "max": s.max,
            "idle_timeout": s.idle_timeout,
            "target_inflight": s.target_inflight,
            "idle": s.idle,
        })),
        "problem": status.problem,
        "state_error": status.state_error,
        "instances": instances(status),
        "images": images,
    })
}

fn instances(status: &FunkoStatus) -> Vec<Value> {
    status
        .instances
        .iter()
        .map(|instance| {
            let health = instance.health_label();
            let health_class = match health {
                "healthy" | "running" => "healthy",
                "unhealthy" | "exited" | "dead" => "unhealthy",
                _ => "starting",
            };
            let suffix = instance
                .name
                .rsplit_once('-')
                .map_or(instance.name.as_str(), |(_, suffix)| suffix);
            json!({
                "name": instance.name,
                "suffix": suffix,
                "state": instance.state,
                "health": health,
                "health_class": health_class,
                "current": instance.current,
                "canary": instance.canary,
                "age": human_age(instance.age_seconds),
                "ip": instance.ip.clone().unwrap_or_default(),
            })
        })
        .collect()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// How long ago `at` was, as `12s ago`.
pub fn ago(at: SystemTime) -> String {
    let seconds = SystemTime::now()
        .duration_since(at)
        .map_or(0, |d| d.as_secs() as i64);
    format!("{} ago", human_age(seconds))
}

pub fn format_rate(rate: f64) -> String {
    if rate >= 100.0 {
        format!("{rate:.0}")
    } else if rate >= 10.0 {
        format!("{rate:.1}")
    } else {
        format!("{rate:.2}")
    }
}

pub fn format_share(share: f64) -> String {
    if share == 0.0 {
        "0 %".to_string()
    } else if share < 0.001 {
        "<0.1 %".to_string()
    } else {
        format!("{:.1} %", share * 100.0)
    }
}

pub fn format_seconds(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.0} ms", seconds * 1000.0)
    } else {
        format!("{seconds:.2} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faaso::engine::status::{ImageStatus, InstanceStatus};

    pub fn sample_status(name: &str, instances: usize) -> FunkoStatus {
        FunkoStatus {
            name: name.to_string(),
            scale: Some(instances as u32),
            state_error: None,
            problem: None,
            running: instances,
            scaling: None,
            private: false,
            domains: Vec::new(),
            canary: None,
            refused_domains: Vec::new(),
            instances: (0..instances)
                .map(|i| InstanceStatus {
                    name: format!("faaso-{name}-s{i:05}"),
                    id: format!("{i:012x}"),
                    state: "running".to_string(),
                    health: None,
                    current: i > 0,
                    created: 0,
                    age_seconds: 3600,
                    ip: Some(format!("172.18.0.{i}")),
                    node: None,
                    canary: false,
                })
                .collect(),
            images: vec![ImageStatus {
                id: "abcdef123456".to_string(),
                tags: vec![format!("faaso-{name}:latest")],
                created: 0,
                latest: true,
            }],
        }
    }

    fn frame() -> Frame<'static> {
        Frame {
            title: "Funkos",
            nav: "funkos",
            csrf: "tok<en>",
        }
    }

    #[test]
    fn the_overview_shows_funkos_instances_and_traffic_escaped() {
        let pages = Pages::new().unwrap();
        let mut hostile = sample_status("hello", 2);
        hostile.problem = Some("<script>alert(1)</script>".to_string());
        let traffic = |name: &str| {
            (name == "hello").then(|| Summary {
                rate: 12.345,
                error_share: Some(0.02),
                p99: Some(0.0123),
                rates: vec![1.0, 2.0, 3.0],
            })
        };
        let data = overview(&[hostile, sample_status("other", 1)], &traffic, true, false);
        let html = pages.render("overview", &frame(), data).unwrap();
        assert!(html.contains(r#"<tr data-funko="hello">"#), "{html}");
        assert!(html.contains("2 running"), "{html}");
        assert!(html.contains("12.3") && html.contains("2.0 %") && html.contains("12 ms"));
        assert!(
            html.contains(r#"<polyline points="96.6,13.7 98.3,7.3 100.0,1.0"/>"#),
            "{html}"
        );
        assert!(html.contains("out of date") && html.contains("current"));
        assert!(!html.contains("<script>alert"), "escaped: {html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains(r#"value="tok&lt;en&gt;""#), "{html}");
        assert!(html.contains("/admin/assets/style.css?v="));
    }

    #[test]
    fn a_funkos_page_lists_its_async_calls() {
        use crate::calls::record::{CallId, Record, Request, State};
        let pages = Pages::new().unwrap();
        let request = Request {
            method: "POST".to_string(),
            target: "/x".to_string(),
            headers: Vec::new(),
            callback: None,
            source: "cron:<t1>".to_string(),
        };
        let mut record = Record::accepted(CallId::new(), "hello", &request, 0);
        record.state = State::Done;
        record.attempts = 2;
        record.last_status = Some(201);
        let mut data = funko(&sample_status("hello", 1));
        data["calls"] = calls(&[record.clone()]);
        let html = pages.render("funko", &frame(), data).unwrap();
        assert!(
            html.contains(&format!("<code>{}</code>", record.call_id)),
            "{html}"
        );
        assert!(
            html.contains("<td>done</td><td>2</td><td>201</td><td>cron:&lt;t1&gt;</td>"),
            "{html}"
        );
        let empty = pages
            .render("funko", &frame(), funko(&sample_status("hello", 1)))
            .unwrap();
        assert!(empty.contains("No async calls kept"), "{empty}");
    }

    #[test]
    fn every_page_renders() {
        let pages = Pages::new().unwrap();
        let status = sample_status("hello", 1);
        let cases = [
            ("login", json!({"token": "t", "next": "/admin/"})),
            ("login", json!({"not_configured": true})),
            ("funko", funko(&status)),
            (
                "logs",
                json!({"name": "hello", "tail": 100, "lines": [{"instance": "x", "line": "a<b"}]}),
            ),
            (
                "secrets",
                json!({"funkos": [{"name": "hello", "secrets": ["db"]}], "known": ["hello"]}),
            ),
            ("secret_delete", json!({"funko": "hello", "secret": "db"})),
            (
                "system",
                json!({"config": [{"key": "listen", "value": "0.0.0.0:8080"}]}),
            ),
            (
                "operation",
                json!({"name": "hello", "heading": "Deploy", "back": "/admin/"}),
            ),
            ("message", json!({"heading": "No", "message": "m"})),
        ];
        for (name, data) in cases {
            let html = pages.render(name, &frame(), data).unwrap();
            assert!(html.starts_with("<!doctype html>"), "{name}");
            assert!(html.contains("</html>"), "{name}");
        }
        let operation = pages
            .render("operation", &frame(), json!({"name": "hello"}))
            .unwrap();
        assert_eq!(operation.matches(STREAM_MARK).count(), 1);
    }

    #[test]
    fn figures_read_well() {
        assert_eq!(format_rate(0.5), "0.50");
        assert_eq!(format_rate(12.34), "12.3");
        assert_eq!(format_rate(1234.5), "1234");
        assert_eq!(format_share(0.0), "0 %");
        assert_eq!(format_share(0.0001), "<0.1 %");
        assert_eq!(format_share(0.25), "25.0 %");
        assert_eq!(format_seconds(0.0123), "12 ms");
        assert_eq!(format_seconds(2.5), "2.50 s");
    }
}
