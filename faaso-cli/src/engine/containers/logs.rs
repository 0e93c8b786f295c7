//! The logs of a funko's containers as one stream, each line prefixed with its instance.
//! Without `follow`, the lines are merged in time order (Docker's timestamps); with it, lines
//! are passed on as they come, and containers started later are followed too.

use std::collections::HashSet;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::Containers;
use crate::engine::docker::{self, DockerError};
use crate::engine::{LifecycleError, LogLine};

impl Containers<'_> {
    /// Passes every log line of the funko's instances to `out`. With `follow` it returns only
    /// when the Docker connection ends (callers stop it by dropping the future, e.g. on Ctrl-C).
    pub(super) async fn merged_logs(
        &self,
        funko: &str,
        follow: bool,
        tail: Option<u32>,
        out: &mut (dyn FnMut(LogLine) + Send),
    ) -> Result<(), LifecycleError> {
        let containers = docker::list_instances(&self.docker, funko).await?;
        if containers.is_empty() && !self.funko_exists(funko).await? {
            return Err(crate::engine::unknown_funko(&self.docker, funko).await);
        }
        let tail = tail.map_or_else(|| "all".to_string(), |n| n.to_string());
        let names: Vec<String> = containers
            .iter()
            .filter_map(docker::container_name)
            .collect();
        let (sender, mut receiver) = mpsc::channel::<Result<LogLine, DockerError>>(1024);
        let mut followed: HashSet<String> = HashSet::new();
        let mut starts = follow.then(|| Box::pin(docker::instance_starts(&self.docker, funko)));
        for name in names {
            followed.insert(name.clone());
            self.spawn_reader(name, follow, &tail, sender.clone());
        }
        if !follow {
            drop(sender);
            let mut lines = Vec::new();
            while let Some(item) = receiver.recv().await {
                lines.push(item?);
            }
            // Stable sort on the timestamp prefix: merged in time order.
            lines.sort_by(|a, b| timestamp(&a.line).cmp(timestamp(&b.line)));
            for line in lines {
                out(strip_timestamp(line));
            }
            return Ok(());
        }
        loop {
            tokio::select! {
                item = receiver.recv() => match item {
                    Some(item) => out(strip_timestamp(item?)),
                    None => return Ok(()),
                },
                Some(started) = async { match starts.as_mut() { Some(s) => s.next().await, None => None } } => {
                    let name = started?;
                    if followed.insert(name.clone()) {
                        self.spawn_reader(name, true, "all", sender.clone());
                    }
                }
            }
        }
    }

    /// Reads one container's log into `sender`, line by line.
    fn spawn_reader(
        &self,
        name: String,
        follow: bool,
        tail: &str,
        sender: mpsc::Sender<Result<LogLine, DockerError>>,
    ) {
        let mut stream = Box::pin(docker::container_logs(
            &self.docker,
            &name,
            follow,
            tail,
            true,
        ));
        tokio::spawn(async move {
            let mut partial = String::new();
            while let Some(chunk) = stream.next().await {
                let chunk = match chunk {
                    Ok(chunk) => chunk,
                    Err(err) => {
                        let _ = sender.send(Err(err)).await;
                        return;
                    }
                };
                partial.push_str(&chunk);
                while let Some(end) = partial.find('\n') {
                    let line: String = partial.drain(..=end).collect();
                    let line = LogLine {
                        instance: name.clone(),
                        line: line.trim_end_matches(['\n', '\r']).to_string(),
                    };
                    if sender.send(Ok(line)).await.is_err() {
                        return;
                    }
                }
            }
            if !partial.is_empty() {
                let _ = sender
                    .send(Ok(LogLine {
                        instance: name,
                        line: partial,
                    }))
                    .await;
            }
        });
    }
}

/// The RFC 3339 timestamp Docker puts before each line (sortable as text).
fn timestamp(line: &str) -> &str {
    line.split_once(' ').map_or("", |(ts, _)| ts)
}

fn strip_timestamp(mut line: LogLine) -> LogLine {
    if let Some((ts, rest)) = line.line.split_once(' ')
        && ts.len() >= 20
        && ts.as_bytes().get(4) == Some(&b'-')
    {
        line.line = rest.to_string();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_stripped() {
        let line = LogLine {
            instance: "a".into(),
            line: "2026-11-29T12:00:00.123456789Z hello world".into(),
        };
        assert_eq!(timestamp(&line.line), "2026-11-29T12:00:00.123456789Z");
        assert_eq!(strip_timestamp(line).line, "hello world");
        let plain = LogLine {
            instance: "a".into(),
            line: "no time here".into(),
        };
        assert_eq!(strip_timestamp(plain).line, "no time here");
    }
}
