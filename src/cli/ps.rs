//! `berth ps`: each service and replica: state, health, pid, ports,
//! restarts, uptime, CPU and memory.

use berth_engine::{Health, ReplicaState};
use clap::{Args, ValueEnum};

use super::{Failure, Global, connect, print_stdout};
use crate::api::{CertificateRow, Ps, ReplicaRow};

#[derive(Debug, Args)]
pub struct PsArgs {
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Also show replicas that are not running (exited, stopped, failed)
    #[arg(short, long)]
    all: bool,
    /// Only these services
    #[arg(value_name = "SERVICE")]
    services: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

pub fn run(global: &Global, args: PsArgs) -> Result<(), Failure> {
    let (client, project) = connect(global)?;
    let mut ps: Ps = match super::block_on_raw(client.get("/v1/ps"))? {
        Ok(ps) => ps,
        Err(crate::api::client::ClientError::NotRunning { .. }) => {
            super::lock::sweep_if_stopped(&project.settings.state_dir);
            eprintln!("project {} is not running", project.name);
            Ps {
                ts: None,
                project: project.name,
                pid: 0,
                started_at: String::new(),
                proxy: Vec::new(),
                services: Vec::new(),
                log_lines_lost: 0,
                certificates: Vec::new(),
            }
        }
        Err(e) => return Err(Failure::Runtime(anyhow::anyhow!("{e}"))),
    };
    ps.services
        .retain(|s| args.services.is_empty() || args.services.contains(&s.name));
    if !args.all {
        for s in &mut ps.services {
            s.replicas.retain(|r| {
                !matches!(
                    r.state,
                    ReplicaState::Exited | ReplicaState::Stopped | ReplicaState::Failed
                )
            });
        }
    }
    let text = match args.format {
        Format::Json => {
            serde_json::to_string_pretty(&ps).map_err(|e| Failure::Runtime(e.into()))? + "\n"
        }
        Format::Table => table(&ps),
    };
    if ps.log_lines_lost > 0 {
        eprintln!(
            "warning: {} log lines could not be written to {} (a full disk?); see `berth logs`",
            ps.log_lines_lost,
            project.settings.state_dir.join("logs").display()
        );
    }
    print_stdout(&text)
}

fn table(ps: &Ps) -> String {
    let header = [
        "NAME", "STATE", "HEALTH", "PID", "PORTS", "RESTARTS", "UPTIME", "CPU", "MEM",
    ];
    let mut rows: Vec<[String; 9]> = Vec::new();
    for s in &ps.services {
        for r in &s.replicas {
            rows.push(row(s, r));
        }
    }
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &[&str]| -> String {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(widths.iter()).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}   "));
            }
        }
        l.trim_end().to_string() + "\n"
    };
    out.push_str(&line(&header));
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        out.push_str(&line(&cells));
    }
    // Why each failed replica failed (shown with -a).
    for s in &ps.services {
        for r in &s.replicas {
            if let Some(failure) = &r.failure {
                out.push_str(&format!("{}: {failure}\n", r.name));
            }
        }
    }
    if !ps.proxy.is_empty() {
        out.push_str(&format!(
            "\nproxy: {}\n",
            ps.proxy
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for s in &ps.services {
        for (target, addr) in &s.listening_udp {
            out.push_str(&format!("udp: {addr} -> {} {target}/udp\n", s.name));
        }
    }
    for c in &ps.certificates {
        out.push_str(&certificate_line(c));
    }
    out
}

/// `tls: NAMES (SOURCE) until T`, and for ACME how ordering goes.
fn certificate_line(c: &CertificateRow) -> String {
    let mut line = format!("tls: {} ({})", c.names.join(", "), c.source);
    match &c.not_after {
        Some(t) => line.push_str(&format!(" until {t}")),
        None => line.push_str(": no certificate yet"),
    }
    if let Some(acme) = &c.acme {
        if let Some(error) = &acme.last_error {
            let times = if acme.failures == 1 { "" } else { "s" };
            line.push_str(&format!("; failed {} time{times}: {error}", acme.failures));
        }
        if let Some(next) = &acme.next_attempt {
            let what = if acme.failures > 0 {
                "retry"
            } else {
                "renewal"
            };
            line.push_str(&format!("; {what} at {next}"));
        }
    }
    line + "\n"
}

fn row(s: &crate::api::ServiceRow, r: &ReplicaRow) -> [String; 9] {
    let ports = r
        .ports
        .iter()
        .map(|(target, own)| match s.listening.get(target) {
            Some(addr) => format!("{addr}->{own}"),
            None if *target == 0 => format!("$PORT={own}"),
            None => format!("{target}->{own}"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let state = match (&r.exit, r.state) {
        (Some(exit), ReplicaState::Exited) => format!("exited ({exit})"),
        (Some(exit), ReplicaState::Restarting) => format!("restarting ({exit})"),
        (_, state) => state.as_str().to_string(),
    };
    [
        r.name.clone(),
        state,
        match r.health {
            Health::None => "-".into(),
            h => h.as_str().to_string(),
        },
        r.pid.map_or("-".into(), |p| p.to_string()),
        if ports.is_empty() { "-".into() } else { ports },
        r.restarts.to_string(),
        r.uptime_seconds.map_or("-".into(), |s| {
            humantime::format_duration(std::time::Duration::from_secs(s)).to_string()
        }),
        r.cpu_seconds.map_or("-".into(), |c| format!("{c:.1}s")),
        match (r.rss_bytes, r.memory_limit) {
            (Some(used), Some(limit)) => format!("{} / {}", human_bytes(used), human_bytes(limit)),
            (Some(used), None) => human_bytes(used),
            (None, _) => "-".into(),
        },
    ]
}

fn human_bytes(b: u64) -> String {
    let mib = b as f64 / (1024.0 * 1024.0);
    if mib >= 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.1} MiB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_replica_says_why_under_the_table() {
        let failed: ReplicaRow = serde_json::from_value(serde_json::json!({
            "name": "api-1", "index": 1, "state": "failed", "health": "none", "ready": false,
            "pid": null, "ports": {}, "restarts": 0, "started_at": null, "uptime_seconds": null,
            "exit": null, "cpu_seconds": null, "rss_bytes": null, "message": null,
            "failure": {"kind": "dependency", "service": "db", "reason": "exited with code 3"}
        }))
        .unwrap();
        let ps = Ps {
            ts: None,
            project: "p".into(),
            pid: 1,
            started_at: String::new(),
            proxy: vec![],
            services: vec![crate::api::ServiceRow {
                name: "api".into(),
                listening: Default::default(),
                listening_udp: Default::default(),
                self_heals: false,
                replicas: vec![failed],
            }],
            log_lines_lost: 0,
            certificates: vec![],
        };
        let text = table(&ps);
        assert!(text.contains("api-1   failed"), "{text}");
        assert!(
            text.contains("api-1: not started: dependency db failed (exited with code 3)\n"),
            "{text}"
        );
    }

    #[test]
    fn certificates_are_listed_under_the_table_with_acme_failures() {
        let rows: Vec<CertificateRow> = serde_json::from_value(serde_json::json!([
            {"source": "file", "names": ["a.test"], "not_after": "2027-01-01T00:00:00Z"},
            {"source": "acme", "names": ["example.org", "www.example.org"], "not_after": null,
             "acme": {"directory": "https://ca/dir", "challenge": "http-01", "orders": 2,
                      "failures": 2, "last_error": "validation: refused (urn:x)",
                      "next_attempt": "2026-12-01T10:02:00Z"}}
        ]))
        .unwrap();
        assert_eq!(
            certificate_line(&rows[0]),
            "tls: a.test (file) until 2027-01-01T00:00:00Z\n"
        );
        assert_eq!(
            certificate_line(&rows[1]),
            "tls: example.org, www.example.org (acme): no certificate yet; failed 2 times: \
             validation: refused (urn:x); retry at 2026-12-01T10:02:00Z\n"
        );
    }
}
