//! `faaso status`: scale, instances and images of funkos, as a table or JSON.

use clap::Args;
use faaso::engine::status::{FunkoStatus, human_age};

use super::Global;

/// Show funkos: scale, instances (health, current or out of date) and images
#[derive(Debug, Args)]
#[command(after_help = "The JSON schema is documented in faaso-cli/src/status.rs and the README.")]
pub struct StatusArgs {
    /// Funkos to show (default: all)
    #[arg(add = clap_complete::engine::ArgValueCandidates::new(super::complete::funkos))]
    names: Vec<String>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

impl StatusArgs {
    pub async fn run(self, global: &Global) -> anyhow::Result<()> {
        let ui = global.ui();
        for name in &self.names {
            faaso::conventions::validate_name(name)?;
        }
        let target = super::target(global, &ui).await?;
        let status = target.status(&self.names).await?;
        if matches!(target, super::Target::Local(_)) {
            super::warn_without_local_gateway(&ui).await;
        }
        if self.json {
            println!("{}", serde_json::to_string_pretty(&status)?);
        } else {
            print!("{}", table(&status));
        }
        Ok(())
    }
}

/// The human view: one block per funko with aligned columns.
fn table(funkos: &[FunkoStatus]) -> String {
    if funkos.is_empty() {
        return "no funkos\n".to_string();
    }
    let mut out = String::new();
    for funko in funkos {
        let scale = funko
            .scale
            .map_or_else(|| "-".to_string(), |s| s.to_string());
        let paused = funko.instances.iter().any(|i| i.state == "paused");
        let scaling = funko.scaling.as_ref().map_or_else(String::new, |s| {
            format!(
                " (min {}, max {}, idle after {}{})",
                s.min,
                s.max,
                s.idle_timeout,
                if s.idle && paused {
                    "; paused: a request thaws it"
                } else if s.idle {
                    "; idle: a request starts it"
                } else {
                    ""
                }
            )
        });
        out.push_str(&format!(
            "{}  scale {scale}, {} running{scaling}\n",
            funko.name, funko.running
        ));
        if funko.private {
            out.push_str("  private: requests need a key (faaso key list)\n");
        }
        if !funko.domains.is_empty() {
            out.push_str(&format!("  domains: {}\n", funko.domains.join(", ")));
        }
        if let Some(canary) = &funko.canary {
            let serving = funko
                .instances
                .iter()
                .filter(|i| !i.canary && i.state == "running")
                .count();
            out.push_str(&format!(
                "  canary: {} % to image {} ({} instance{}), {} % to the serving release ({} instance{}){}\n",
                canary.percent,
                canary.image,
                canary.instances,
                if canary.instances == 1 { "" } else { "s" },
                100 - u32::from(canary.percent),
                serving,
                if serving == 1 { "" } else { "s" },
                if canary.sticky { ", sticky by client address" } else { "" },
            ));
        }
        for refused in &funko.refused_domains {
            out.push_str(&format!(
                "  warning: domain {} is refused: funko {} claimed it first\n",
                refused.domain, refused.owner
            ));
        }
        if let Some(err) = &funko.state_error {
            out.push_str(&format!("  warning: saved scale unreadable ({err})\n"));
        }
        if let Some(problem) = &funko.problem {
            out.push_str(&format!("  warning: not at its scale: {problem}\n"));
        }
        let mut rows = vec![vec![
            "  INSTANCE".to_string(),
            "STATE".into(),
            "HEALTH".into(),
            "IMAGE".into(),
            "AGE".into(),
            "IP".into(),
        ]];
        let swarm = funko.instances.iter().any(|i| i.node.is_some());
        if swarm {
            rows[0].push("NODE".into());
        }
        for i in &funko.instances {
            rows.push(vec![
                format!("  {}", i.name),
                i.state.clone(),
                i.health_label().to_string(),
                if i.canary {
                    "canary".into()
                } else if i.current {
                    "current".into()
                } else {
                    "out of date".into()
                },
                human_age(i.age_seconds),
                i.ip.clone().unwrap_or_else(|| "-".into()),
            ]);
            if swarm && let Some(row) = rows.last_mut() {
                row.push(i.node.clone().unwrap_or_else(|| "-".into()));
            }
        }
        if funko.instances.is_empty() {
            out.push_str("  no instances\n");
        } else {
            out.push_str(&align(&rows));
        }
        for image in &funko.images {
            out.push_str(&format!("  image {} {}\n", image.id, image.tags.join(" ")));
        }
    }
    out
}

fn align(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|v| v.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, v)| format!("{v:width$}", width = widths[c]))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
