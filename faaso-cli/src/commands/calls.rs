//! `faaso calls`: a funko's recent async calls, or one call's record, from the gateway that
//! stores them (its admin API: the saved login or `--server`, else the local gateway).

use clap::Args;
use serde_json::Value;

use super::Global;

/// The local gateway asked when no server is configured.
const LOCAL_GATEWAY: &str = "http://127.0.0.1:8888";

/// Show a funko's recent async calls (newest first), or one call
///
/// Calls are kept by the gateway that accepted them, so this asks its admin API: the server
/// of `faaso login` or `--server`, else the gateway on this machine (http://127.0.0.1:8888,
/// password from FAASO_PASSWORD).
#[derive(Debug, Args)]
pub struct CallsArgs {
    /// The funko
    #[arg(add = clap_complete::engine::ArgValueCandidates::new(super::complete::funkos))]
    name: String,
    /// One call's id (from the 202's X-Call-Id): show its whole record
    call_id: Option<String>,
    /// How many calls to list
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
    limit: u16,
    /// Print the records as JSON
    #[arg(long)]
    json: bool,
}

impl CallsArgs {
    pub async fn run(self, global: &Global) -> anyhow::Result<()> {
        let ui = global.ui();
        faaso::conventions::validate_name(&self.name)?;
        let remote = match super::remote(global, &ui).await? {
            Some(remote) => remote,
            None => {
                let password = faaso::store::dirs::process_env("FAASO_PASSWORD");
                let remote = faaso::client::remote::Remote::new(LOCAL_GATEWAY, password, None)?;
                ui.note(format!(
                    "asking the local gateway at {LOCAL_GATEWAY} (async calls are in its store)"
                ));
                remote
            }
        };
        if let Some(id) = &self.call_id {
            let record = remote.call(id).await?;
            if record["funko"].as_str() != Some(self.name.as_str()) {
                anyhow::bail!(
                    "call {id} belongs to funko {}, not {}",
                    record["funko"],
                    self.name
                );
            }
            println!("{}", serde_json::to_string_pretty(&record)?);
            return Ok(());
        }
        let calls = remote.calls(&self.name, usize::from(self.limit)).await?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&calls)?);
            return Ok(());
        }
        if calls.is_empty() {
            ui.note(format!("no async calls of {} are kept", self.name));
            return Ok(());
        }
        println!(
            "{:<32}  {:<8}  {:>8}  {:>6}  {:<10}  {:<10}  ACCEPTED",
            "CALL ID", "STATE", "ATTEMPTS", "STATUS", "SOURCE", "CALLBACK"
        );
        let now = faaso_now_ms();
        for call in &calls {
            println!(
                "{:<32}  {:<8}  {:>8}  {:>6}  {:<10}  {:<10}  {}",
                text(&call["call_id"]),
                text(&call["state"]),
                text(&call["attempts"]),
                text(&call["last_status"]),
                text(&call["source"]),
                text(&call["callback"]),
                call["accepted_at_ms"]
                    .as_u64()
                    .map_or_else(|| "-".to_string(), |at| ago(now.saturating_sub(at))),
            );
        }
        Ok(())
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn faaso_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `ms` as "12s ago", "3m ago", "5h ago", "2d ago".
fn ago(ms: u64) -> String {
    let seconds = ms / 1000;
    match seconds {
        0..60 => format!("{seconds}s ago"),
        60..3600 => format!("{}m ago", seconds / 60),
        3600..86400 => format!("{}h ago", seconds / 3600),
        _ => format!("{}d ago", seconds / 86400),
    }
}
