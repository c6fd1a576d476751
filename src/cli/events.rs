//! `berth events [--json]`: state and health transitions, deploys and lost
//! log lines, as they happen.

use std::io::Write;

use clap::Args;

use super::{Failure, Global, connect};

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// One JSON object per line
    #[arg(long)]
    json: bool,
}

pub fn run(global: &Global, args: EventsArgs) -> Result<(), Failure> {
    let (client, _) = connect(global)?;
    let mut out = std::io::stdout();
    super::block_on(client.lines("/v1/events", |line| {
        let text = if args.json {
            String::from_utf8_lossy(line).into_owned()
        } else {
            human(line)
        };
        writeln!(out, "{text}").and_then(|()| out.flush()).is_ok()
    }))
}

fn human(line: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
        return String::from_utf8_lossy(line).into_owned();
    };
    let s = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    if matches!(
        v.get("kind").and_then(serde_json::Value::as_str),
        Some("log_lines_lost" | "deploy")
    ) {
        return format!("{} berth: {}", s("ts"), s("message"));
    }
    let replica = v
        .get("replica")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    let mut text = format!("{} {}-{} {}", s("ts"), s("service"), replica, s("state"));
    let health = s("health");
    if health != "none" {
        text.push_str(&format!(" ({health})"));
    }
    if v.get("ready").and_then(serde_json::Value::as_bool) == Some(true) {
        text.push_str(" ready");
    }
    if let Some(e) = v.get("exit").and_then(serde_json::Value::as_str) {
        text.push_str(&format!(" ({e})"));
    }
    if let Some(m) = v.get("message").and_then(serde_json::Value::as_str) {
        text.push_str(&format!(": {m}"));
    }
    text
}
