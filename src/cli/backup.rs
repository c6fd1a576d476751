//! `berth backup [SERVICE…] [-o FILE] [--binds] [--json]`: the services'
//! named volumes (and bind mounts with `--binds`) and their `dump` outputs
//! in one archive, made consistent as each service's `x-berth.backup` says.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};
use berth_compose::Project;
use clap::Args;

use super::stack::{Stack, run_in};
use super::{Failure, Global, print_stdout};
use crate::backup::list::{archive_name, write_sidecar};
use crate::backup::manifest::{DumpEntry, FORMAT, Manifest, Tree};
use crate::backup::plan::{self, TreePlan};
use crate::backup::progress::{Progress, rate, size};
use crate::backup::write::Writer;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Only these services' volumes and dumps (default: every service)
    #[arg(value_name = "SERVICE")]
    services: Vec<String>,
    /// Write the archive here (default: x-berth.backup.dir/<project>-<time>.tar.zst)
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Also archive the sources of bind mounts
    #[arg(long)]
    binds: bool,
    /// Print a JSON summary on stdout
    #[arg(long)]
    json: bool,
}

/// A finished backup.
#[derive(Debug, serde::Serialize)]
pub struct Made {
    pub archive: PathBuf,
    pub manifest: Manifest,
    /// Bytes on disk.
    pub size: u64,
    pub seconds: f64,
    /// How long services with `stop: true` were stopped.
    pub downtime_seconds: Option<f64>,
    pub warnings: Vec<String>,
    /// Archives deleted by `keep` afterwards.
    pub pruned: Vec<PathBuf>,
}

pub fn run(global: &Global, args: BackupArgs) -> Result<(), Failure> {
    let options = global.load_options(&[])?;
    let project = super::load(&options)?.project;
    let services = plan::services(&project, &args.services).map_err(Failure::Usage)?;
    let show = std::io::stderr().is_terminal() && !args.json;
    let output = args.output.as_deref().map(|o| options.working_dir.join(o));
    let mut made = make(&project, &services, output.as_deref(), args.binds, show)?;
    if output.is_none() {
        made.pruned = super::backups::prune(&project)?;
    }
    for w in &made.warnings {
        eprintln!("berth: warning: {w}");
    }
    if args.json {
        let mut text =
            serde_json::to_string_pretty(&summary_json(&made)).map_err(anyhow::Error::from)?;
        text.push('\n');
        return print_stdout(&text);
    }
    let m = &made.manifest;
    let mut text = format!(
        "backup {}: {} volume{}, {} dump{}, {} of data, {} on disk, {:.1}s ({})\n",
        made.archive.display(),
        m.trees.len(),
        if m.trees.len() == 1 { "" } else { "s" },
        m.dumps.len(),
        if m.dumps.len() == 1 { "" } else { "s" },
        size(m.bytes()),
        size(made.size),
        made.seconds,
        rate(m.bytes(), std::time::Duration::from_secs_f64(made.seconds)),
    );
    for p in &made.pruned {
        text.push_str(&format!("pruned {}\n", p.display()));
    }
    print_stdout(&text)
}

fn summary_json(made: &Made) -> serde_json::Value {
    let m = &made.manifest;
    serde_json::json!({
        "archive": made.archive,
        "project": m.project,
        "created": m.created,
        "services": m.services,
        "volumes": m.trees.iter().map(|t| serde_json::json!({
            "kind": t.kind, "name": t.name, "files": t.files, "bytes": t.bytes,
        })).collect::<Vec<_>>(),
        "dumps": m.dumps,
        "bytes": m.bytes(),
        "size": made.size,
        "seconds": made.seconds,
        "downtime_seconds": made.downtime_seconds,
        "encrypted": made.archive.extension().is_some_and(|e| e == "age"),
        "warnings": made.warnings,
        "pruned": made.pruned,
    })
}

/// Makes a backup of `services` (see the module doc), to `output` or to a
/// new name in the backup directory.
///
/// # Errors
/// Anything that keeps the archive from being complete; no file is left
/// under the final name then.
pub fn make(
    project: &Project,
    services: &[String],
    output: Option<&Path>,
    binds: bool,
    show: bool,
) -> Result<Made> {
    let started = Instant::now();
    let settings = &project.settings.backup;
    let (trees, mut warnings) = plan::trees(project, services, binds);
    let stack = Stack::find(project)?;
    let created = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let encrypted = !settings.encrypt_to.is_empty();
    let path = match output {
        Some(o) => o.to_path_buf(),
        None => settings
            .dir
            .join(archive_name(&project.name, &created, encrypted)),
    };
    let mut writer = Writer::create(&path, &settings.encrypt_to, Progress::new("backup", show))?;
    let filled = fill(
        &mut writer,
        project,
        services,
        &trees,
        stack.as_ref(),
        &mut warnings,
    );
    writer.progress.done();
    let (trees, dumps, downtime) = match filled {
        Ok(f) => f,
        Err(e) => {
            writer.abandon();
            return Err(e);
        }
    };
    for member in &writer.changed {
        warnings.push(format!("{member} changed size while it was archived: use a dump or `stop: true` for a consistent copy"));
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        project: project.name.clone(),
        berth_version: env!("CARGO_PKG_VERSION").into(),
        created,
        services: services.to_vec(),
        trees,
        dumps,
        members: std::mem::take(&mut writer.members),
    };
    let archive = writer.finish(&manifest)?;
    let mut summary = manifest.summary();
    summary.encrypted = encrypted;
    write_sidecar(&archive, &summary)?;
    let size = std::fs::metadata(&archive).map(|m| m.len()).unwrap_or(0);
    Ok(Made {
        archive,
        manifest,
        size,
        seconds: started.elapsed().as_secs_f64(),
        downtime_seconds: downtime,
        warnings,
        pruned: Vec::new(),
    })
}

type Filled = (Vec<Tree>, Vec<DumpEntry>, Option<f64>);

fn fill(
    writer: &mut Writer,
    project: &Project,
    services: &[String],
    trees: &[TreePlan],
    stack: Option<&Stack>,
    warnings: &mut Vec<String>,
) -> Result<Filled> {
    let dumps = dumps(writer, project, services, stack, warnings)?;
    hooks(project, services, stack, warnings, Hook::Pre)?;
    let mut done = Vec::new();
    for t in trees.iter().filter(|t| !t.stop) {
        done.push(archive(writer, t)?);
    }
    let stopping: Vec<String> = services
        .iter()
        .filter(|s| {
            project
                .services
                .get(*s)
                .is_some_and(|s| s.settings.backup.stop)
        })
        .cloned()
        .collect();
    let mut downtime = None;
    if !stopping.is_empty() {
        let stopped_at = Instant::now();
        if let Some(stack) = stack {
            stack.stop(&stopping)?;
        }
        let archived: Result<Vec<Tree>> = trees
            .iter()
            .filter(|t| t.stop)
            .map(|t| archive(writer, t))
            .collect();
        if let Some(stack) = stack {
            stack.start(&stopping)?;
            downtime = Some(stopped_at.elapsed().as_secs_f64());
        }
        done.extend(archived?);
    }
    hooks(project, services, stack, warnings, Hook::Post)?;
    Ok((done, dumps, downtime))
}

/// Archives one tree; a volume in the Docker Engine is copied out first
/// (into its staging directory, removed after).
fn archive(writer: &mut Writer, t: &TreePlan) -> Result<Tree> {
    let Some(engine) = &t.engine else {
        return writer.tree(t);
    };
    let _ = std::fs::remove_dir_all(&t.dir);
    let archived = crate::backup::container::export_volume(&engine.volume, &engine.image, &t.dir)
        .and_then(|()| writer.tree(t));
    let _ = std::fs::remove_dir_all(&t.dir);
    archived
}

/// Each service's `dump`, spooled beside the archive and added to it.
fn dumps(
    writer: &mut Writer,
    project: &Project,
    services: &[String],
    stack: Option<&Stack>,
    warnings: &mut Vec<String>,
) -> Result<Vec<DumpEntry>> {
    let mut out = Vec::new();
    for name in services {
        let Some(dump) = project
            .services
            .get(name)
            .and_then(|s| s.settings.backup.dump.as_ref())
        else {
            continue;
        };
        let Some(stack) = stack else {
            warnings.push(format!(
                "services.{name}: the stack is not running, so its dump was not made (volumes only)"
            ));
            continue;
        };
        let target = match stack.exec_target(name) {
            Ok(t) => t,
            Err(e) => {
                warnings.push(format!("services.{name}: its dump was not made: {e}"));
                continue;
            }
        };
        let spool =
            crate::backup::write::temp_name(&writer.path().with_extension(format!("dump-{name}")));
        let result = run_in(&target, name, &dump.command, None, Some(&spool))
            .with_context(|| format!("services.{name}: the dump failed"))
            .and_then(|()| writer.dump(&format!("dumps/{name}"), &spool));
        let _ = std::fs::remove_file(&spool);
        let bytes = result?;
        out.push(DumpEntry {
            service: name.clone(),
            member: format!("dumps/{name}"),
            bytes,
        });
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy)]
enum Hook {
    Pre,
    Post,
}

fn hooks(
    project: &Project,
    services: &[String],
    stack: Option<&Stack>,
    warnings: &mut Vec<String>,
    which: Hook,
) -> Result<()> {
    for name in services {
        let Some(s) = project.services.get(name) else {
            continue;
        };
        let hooks = &s.settings.backup.hooks;
        let (command, word) = match which {
            Hook::Pre => (&hooks.pre, "pre"),
            Hook::Post => (&hooks.post, "post"),
        };
        let Some(command) = command else { continue };
        match stack {
            Some(stack) => run_in(&stack.exec_target(name)?, name, command, None, None)
                .with_context(|| format!("services.{name}: the backup's {word} hook failed"))?,
            None => warnings.push(format!(
                "services.{name}: the stack is not running, so its {word} hook did not run"
            )),
        }
    }
    Ok(())
}
