//! Reading Prometheus text (a `/metrics` page) in tests, and running a real Prometheus server
//! (Debian's `prometheus` package) that scrapes a gateway.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The value of the series `name` whose labels are exactly `labels`.
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: BTreeMap<&str, &str> = labels.iter().copied().collect();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((n, rest)) => (n, parse_labels(rest.strip_suffix('}')?)),
                None => (series, BTreeMap::new()),
            };
            (series_name == name && series_labels == wanted).then(|| value.parse().ok())?
        })
        .next()
}

fn parse_labels(text: &str) -> BTreeMap<&str, &str> {
    text.split(',')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((k, v.trim_matches('"')))
        })
        .collect()
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
