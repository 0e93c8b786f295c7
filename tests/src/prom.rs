//! Reading Prometheus text (a `/metrics` page) in tests, and running a real Prometheus server
//! (Debian's `prometheus` package) that scrapes a gateway.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One sample of the text format: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The samples of a Prometheus text page, parsed by the format's grammar: label values are
/// quoted strings in which `\"`, `\\` and `\n` are escapes (so a `,` or `}` inside a value is
/// part of it), an optional timestamp may follow the value. Malformed lines are an error.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| parse_sample(line).ok_or_else(|| format!("malformed sample line: {line}")))
        .collect()
}

fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        loop {
            // Skip separators; `}` ends the labels.
            while let Some((_, c)) = chars.peek() {
                if *c == ',' || c.is_whitespace() {
                    chars.next();
                } else {
                    break;
                }
            }
            let (start, c) = chars.next()?;
            if c == '}' {
                rest = &after[start + 1..];
                break;
            }
            let eq = after[start..].find('=')? + start;
            let key = after[start..eq].trim().to_string();
            while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                chars.next();
            }
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()?.1 {
                    '"' => break,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    other => value.push(other),
                }
            }
            labels.insert(key, value);
        }
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// The value of the series `name` whose labels are exactly `labels` (`None` when absent);
/// panics on a page that is not valid text format.
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    parse(text)
        .unwrap_or_else(|err| panic!("{err}"))
        .into_iter()
        .find(|s| s.name == name && s.labels == wanted)
        .map(|s| s.value)
}

/// The metric family names declared by `# TYPE` lines.
pub fn families(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split(' ').next())
        .map(str::to_string)
        .collect()
}

/// Finds a command on `PATH`, or applies the rule for required tools: panic under `CI=true`,
/// else print why the test is skipped and return `None`.
pub fn tool_or_skip(test: &str, command: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(command))
            .find(|path| path.is_file())
    });
    match found {
        Some(path) => Some(path),
        None if crate::docker::is_ci() => {
            panic!("{test}: `{command}` is required under CI=true (apt-get install {package})")
        }
        None => {
            crate::skip::skip(
                test,
                &format!("`{command}` not found (apt-get install {package})"),
            );
            None
        }
    }
}

/// A Prometheus server on a free loopback port, scraping `target` every second; killed on drop.
pub struct PrometheusServer {
    child: Child,
    /// Base URL of its HTTP API, for example `http://127.0.0.1:40000`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl PrometheusServer {
    pub async fn start(binary: &std::path::Path, target: &str) -> PrometheusServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = crate::gateway::free_port();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  \
             - job_name: faaso-gateway\n    static_configs:\n      - targets: [\"{target}\"]\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("prometheus config can be written");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus can be started");
        let server = PrometheusServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        crate::http::wait_for_status(
            &format!("{}/-/ready", server.url),
            200,
            Duration::from_secs(30),
        )
        .await;
        server
    }

    /// Runs an instant query; returns the first sample's value, if any.
    pub async fn query(&self, expr: &str) -> Option<f64> {
        let response: serde_json::Value = crate::http::client()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", expr)])
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        response["data"]["result"][0]["value"][1]
            .as_str()?
            .parse()
            .ok()
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_may_hold_commas_quotes_and_braces() {
        let text = "# TYPE x counter\n\
                    x{a=\"1,2\",b=\"say \\\"hi\\\"}\"} 3 1700000000000\n\
                    y 4.5\n\
                    z{le=\"+Inf\",} +Inf\n";
        let samples = parse(text).unwrap();
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].labels["a"], "1,2");
        assert_eq!(samples[0].labels["b"], "say \"hi\"}");
        assert_eq!(
            value(text, "x", &[("a", "1,2"), ("b", "say \"hi\"}")]),
            Some(3.0)
        );
        assert_eq!(value(text, "y", &[]), Some(4.5));
        assert_eq!(value(text, "z", &[("le", "+Inf")]), Some(f64::INFINITY));
        assert_eq!(value(text, "x", &[("a", "1")]), None);
        assert!(parse("x{a=\"unterminated} 1\n").is_err());
    }
}
