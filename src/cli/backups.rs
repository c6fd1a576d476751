//! `berth backups [--json]`: the project's archives with their time, size
//! and what they hold; and pruning by `x-berth.backup.keep`.

use std::path::PathBuf;

use anyhow::Result;
use berth_compose::Project;
use clap::Args;

use super::{Failure, Global, print_stdout};
use crate::backup::list::{Listed, list, sidecar};
use crate::backup::progress::size;

#[derive(Debug, Args)]
pub struct BackupsArgs {
    /// Print JSON
    #[arg(long)]
    json: bool,
}

pub fn run(global: &Global, args: BackupsArgs) -> Result<(), Failure> {
    let options = global.load_options(&[])?;
    let project = super::load_quiet(&options)?.project;
    let found = list(&project.settings.backup.dir, &project.name)?;
    if args.json {
        let mut text = serde_json::to_string_pretty(&found).map_err(anyhow::Error::from)?;
        text.push('\n');
        return print_stdout(&text);
    }
    if found.is_empty() {
        return print_stdout(&format!(
            "no backups of {} in {}\n",
            project.name,
            project.settings.backup.dir.display()
        ));
    }
    let mut rows = vec![[
        "ARCHIVE".to_string(),
        "CREATED".into(),
        "SIZE".into(),
        "DATA".into(),
        "HOLDS".into(),
    ]];
    rows.extend(found.iter().map(row));
    let widths: Vec<usize> = (0..5)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
    }
    print_stdout(&text)
}

fn row(l: &Listed) -> [String; 5] {
    let name = l
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(s) = &l.summary else {
        return [
            name,
            "?".into(),
            size(l.size),
            "?".into(),
            "? (no summary beside it)".into(),
        ];
    };
    let mut holds = Vec::new();
    if !s.volumes.is_empty() {
        holds.push(format!("volumes {}", s.volumes.join(", ")));
    }
    if !s.dumps.is_empty() {
        holds.push(format!("dumps {}", s.dumps.join(", ")));
    }
    if s.encrypted {
        holds.push("encrypted".into());
    }
    [
        name,
        s.created.clone(),
        size(l.size),
        size(s.bytes),
        holds.join("; "),
    ]
}

/// Deletes the project's archives that `keep` does not keep (with their
/// summaries), judging days and weeks in local time; the paths deleted.
///
/// # Errors
/// The backup directory cannot be read, or an archive cannot be deleted.
pub fn prune(project: &Project) -> Result<Vec<PathBuf>> {
    let rules = &project.settings.backup.keep;
    if rules.keeps_everything() {
        return Ok(Vec::new());
    }
    let found = list(&project.settings.backup.dir, &project.name)?;
    let times: Vec<Option<i64>> = found
        .iter()
        .map(|l| {
            l.created()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .and_then(|d| i64::try_from(d.as_secs()).ok())
        })
        .collect();
    let kept = crate::backup::keep::kept(&times, rules, &jiff::tz::TimeZone::system());
    let mut pruned = Vec::new();
    for (l, keep) in found.iter().zip(kept) {
        if keep {
            continue;
        }
        std::fs::remove_file(&l.path)
            .map_err(|e| anyhow::anyhow!("cannot prune {}: {e}", l.path.display()))?;
        let _ = std::fs::remove_file(sidecar(&l.path));
        pruned.push(l.path.clone());
    }
    Ok(pruned)
}
