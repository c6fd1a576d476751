//! Scheduled backups inside `berth up`: at each match of
//! `x-berth.backup.schedule` (local time), a backup of every service as
//! `berth backup` makes it, then pruning by `keep`; each outcome is a line
//! in the stack's log under `backup`.

use berth_compose::Project;
use berth_engine::logs::LogHub;
use tokio_util::sync::CancellationToken;

use crate::backup::schedule::{Schedule, SystemClock, run};

/// Starts the schedule, when the project has one.
pub fn spawn(project: &Project, logs: &LogHub, stop: CancellationToken) {
    let Some(text) = project.settings.backup.schedule.clone() else {
        return;
    };
    let schedule = match Schedule::parse(&text, jiff::tz::TimeZone::system()) {
        Ok(s) => s,
        Err(e) => {
            logs.system(
                "backup",
                0,
                format!("x-berth.backup.schedule {text:?}: {e}; no scheduled backups"),
            );
            return;
        }
    };
    let (project, logs) = (project.clone(), logs.clone());
    tokio::spawn(async move {
        logs.system("backup", 0, format!("scheduled: {text}"));
        run(&schedule, &SystemClock, &stop, |_| once(&project, &logs)).await;
    });
}

/// One scheduled backup, on a thread of its own (it talks to this very
/// stack's control API, synchronously).
async fn once(project: &Project, logs: &LogHub) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let project = project.clone();
    std::thread::spawn(move || {
        let services: Vec<String> = project.services.keys().cloned().collect();
        let made =
            super::backup::make(&project, &services, None, false, false).and_then(|mut made| {
                made.pruned = super::backups::prune(&project)?;
                Ok(made)
            });
        let _ = tx.send(made);
    });
    match rx.await {
        Ok(Ok(made)) => {
            for w in &made.warnings {
                logs.system("backup", 0, format!("warning: {w}"));
            }
            logs.system(
                "backup",
                0,
                format!("backup {} ({:.1}s)", made.archive.display(), made.seconds),
            );
            for p in &made.pruned {
                logs.system("backup", 0, format!("pruned {}", p.display()));
            }
        }
        Ok(Err(e)) => logs.system("backup", 0, format!("backup failed: {e:#}")),
        Err(_) => logs.system("backup", 0, "backup failed: its thread ended".to_string()),
    }
}
