//! `berth logs [-f] [--tail N] [--since T] [-t] [--json] [SERVICE…]`: from
//! the running stack (`-f` follows across restarts and scaling), or from
//! the log files when it is down.

use std::io::Write;

use berth_engine::logs::{
    Formatter, JsonRecord, LogFilter, PrintOptions, parse_since, read_records,
};
use clap::Args;

use super::{Failure, Global, connect};
use crate::api::client::ClientError;

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep following new lines (across restarts and scaling)
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines of each replica's history
    #[arg(short = 'n', long, value_name = "N")]
    tail: Option<usize>,
    /// Only lines since this time (RFC 3339) or this long ago (10m, 1h)
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Prefix lines with timestamps
    #[arg(short, long)]
    timestamps: bool,
    /// One JSON object per line
    #[arg(long)]
    json: bool,
    /// Services (default: all)
    #[arg(value_name = "SERVICE")]
    services: Vec<String>,
}

/// Berth's own lines, under names of their own beside the services':
/// the stack's (`berth`), the edge proxy's access log (`proxy`) and the
/// backup schedule's (`backup`).
const OWN_SOURCES: [&str; 3] = ["berth", "proxy", "backup"];

pub fn run(global: &Global, args: LogsArgs) -> Result<(), Failure> {
    let (client, project) = connect(global)?;
    for s in &args.services {
        if !project.services.contains_key(s) && !OWN_SOURCES.contains(&s.as_str()) {
            let services: Vec<&str> = project.services.keys().map(String::as_str).collect();
            return Err(Failure::Usage(format!(
                "no such service: {s} (the file's: {}; berth's own lines: {})",
                services.join(", "),
                OWN_SOURCES.join(", ")
            )));
        }
    }
    let mut formatter = Formatter::new(PrintOptions {
        color: !global.no_color && super::stdout_color(),
        timestamps: args.timestamps,
        json: args.json,
    });
    for (name, s) in &project.services {
        for i in 1..=s.replicas() {
            formatter.register(name, i);
        }
    }
    let since = match &args.since {
        Some(s) => Some(
            parse_since(s, std::time::SystemTime::now())
                .map_err(|e| Failure::Usage(e.to_string()))?,
        ),
        None => None,
    };
    let path = live_path(&args);
    let mut out = std::io::stdout().lock();
    let mut buf = Vec::new();
    let live = super::block_on_raw(client.lines(&path, |line| {
        buf.clear();
        match serde_json::from_slice::<serde_json::Value>(line) {
            Ok(v) if v.get("skipped").is_some() => {
                formatter.format_skipped(v["skipped"].as_u64().unwrap_or(0), &mut buf);
            }
            Ok(v) if v.get("error").is_some() => {
                buf.extend_from_slice(format!("berth: {}\n", v["error"]).as_bytes());
            }
            Ok(_) => match serde_json::from_slice::<JsonRecord<'_>>(line)
                .ok()
                .and_then(JsonRecord::into_record)
            {
                Some(r) => formatter.format(&r, &mut buf),
                None => return true,
            },
            Err(_) => return true,
        }
        out.write_all(&buf).and_then(|()| out.flush()).is_ok()
    }))?;
    match live {
        Ok(()) => Ok(()),
        Err(ClientError::NotRunning { .. }) => {
            if args.follow {
                eprintln!(
                    "project {} is not running; showing its log files",
                    project.name
                );
            }
            let filter = LogFilter {
                services: args.services.clone(),
                since,
                tail: args.tail,
            };
            let dir = project.settings.state_dir.join("logs");
            print_files(&dir, &filter, &mut formatter, &mut out)
        }
        Err(e) => Err(Failure::Runtime(anyhow::anyhow!("{e}"))),
    }
}

/// The control API path of the live stream the arguments ask for.
fn live_path(args: &LogsArgs) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("follow", if args.follow { "1" } else { "0" });
    for s in &args.services {
        query.append_pair("service", s);
    }
    if let Some(n) = args.tail {
        query.append_pair("tail", &n.to_string());
    }
    if let Some(since) = &args.since {
        query.append_pair("since", since);
    }
    format!("/v1/logs?{}", query.finish())
}

/// The log files' lines that pass `filter`, in time order, until the
/// reader goes away.
fn print_files(
    dir: &std::path::Path,
    filter: &LogFilter,
    formatter: &mut Formatter,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let mut buf = Vec::new();
    for record in read_records(dir, filter) {
        let record = record
            .map_err(|e| Failure::Runtime(anyhow::anyhow!("reading {}: {e}", dir.display())))?;
        buf.clear();
        formatter.format(&record, &mut buf);
        if out.write_all(&buf).is_err() {
            return Ok(());
        }
    }
    let _ = out.flush();
    Ok(())
}
