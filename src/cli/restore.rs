//! `berth restore FILE [SERVICE…] [--dry-run] [--identity KEYFILE]
//! [--force] [--json]`: verifies the whole archive first (a damaged or
//! truncated one changes nothing), stops the services that use what it
//! restores, puts their volumes back, starts them and feeds each `dump`
//! to its service's `restore` command.

use crate::backup::plan::TreePlan;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use berth_compose::Project;
use clap::Args;

use super::stack::{Stack, run_in};
use super::{Failure, Global, print_stdout};
use crate::backup::manifest::{DumpEntry, Manifest, Tree};
use crate::backup::plan::kind_word;
use crate::backup::read::{Target, extract, verify};

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The archive
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Only what these services use (default: everything in the archive)
    #[arg(value_name = "SERVICE")]
    services: Vec<String>,
    /// Verify the archive and say what would be restored; change nothing
    #[arg(long)]
    dry_run: bool,
    /// An age identity file (as `age -d -i` takes) for an encrypted archive
    #[arg(short = 'i', long, value_name = "KEYFILE")]
    identity: Option<PathBuf>,
    /// Restore another project's archive into this one
    #[arg(long)]
    force: bool,
    /// Print a JSON summary on stdout
    #[arg(long)]
    json: bool,
}

pub fn run(global: &Global, args: RestoreArgs) -> Result<(), Failure> {
    let options = global.load_options(&[])?;
    let project = super::load(&options)?.project;
    let file = options.working_dir.join(&args.file);
    let identity = args.identity.as_ref().map(|i| options.working_dir.join(i));
    let manifest = verify(&file, identity.as_deref())?;
    if manifest.project != project.name && !args.force {
        return Err(Failure::Usage(format!(
            "{} is a backup of project {}, not of {}: pass --force to restore it into {}",
            file.display(),
            manifest.project,
            project.name,
            project.name
        )));
    }
    let (trees, dumps) = chosen(&manifest, &args.services).map_err(Failure::Usage)?;
    let targets = in_project(&project, trees);
    let mut lines = Vec::new();
    for (t, plan) in &targets {
        lines.push(format!(
            "{} {}: {} files, {} -> {}",
            kind_word(t.kind),
            t.name,
            t.files,
            crate::backup::progress::size(t.bytes),
            destination(plan)
        ));
    }
    for d in &dumps {
        lines.push(format!(
            "dump {}: {}",
            d.service,
            crate::backup::progress::size(d.bytes)
        ));
    }
    if !args.dry_run {
        let progress = crate::backup::progress::Progress::new(
            "restore",
            std::io::IsTerminal::is_terminal(&std::io::stderr()) && !args.json,
        );
        let done = apply(
            &project,
            &file,
            identity.as_deref(),
            (&targets, &dumps),
            &progress,
        )?;
        lines.extend(done);
    }
    if args.json {
        let value = serde_json::json!({
            "archive": file,
            "project": manifest.project,
            "created": manifest.created,
            "dry_run": args.dry_run,
            "volumes": targets.iter().map(|(t, plan)| serde_json::json!({"kind": t.kind, "name": t.name, "files": t.files, "bytes": t.bytes, "to": destination(plan)})).collect::<Vec<_>>(),
            "dumps": dumps,
            "lines": lines,
        });
        let text = serde_json::to_string_pretty(&value).map_err(anyhow::Error::from)?;
        return print_stdout(&(text + "\n"));
    }
    let verb = if args.dry_run {
        "would restore"
    } else {
        "restored"
    };
    let mut text = format!(
        "{} verified ({} of project {}); {verb}:\n",
        file.display(),
        manifest.created,
        manifest.project
    );
    for l in lines {
        text.push_str(&format!("  {l}\n"));
    }
    print_stdout(&text)
}

/// The trees and dumps of the services asked for (all when none).
fn chosen(manifest: &Manifest, services: &[String]) -> Result<(Vec<Tree>, Vec<DumpEntry>), String> {
    for s in services {
        let held = manifest.trees.iter().any(|t| t.services.contains(s))
            || manifest.dumps.iter().any(|d| &d.service == s);
        if !held {
            return Err(format!(
                "the archive holds nothing of service {s} (it holds: {})",
                manifest.services.join(", ")
            ));
        }
    }
    let wanted = |list: &[String]| services.is_empty() || list.iter().any(|s| services.contains(s));
    let trees = manifest
        .trees
        .iter()
        .filter(|t| wanted(&t.services))
        .cloned()
        .collect();
    let dumps = manifest
        .dumps
        .iter()
        .filter(|d| wanted(std::slice::from_ref(&d.service)))
        .cloned()
        .collect();
    Ok((trees, dumps))
}

/// Each archived tree with the directory it goes back to: the one of the
/// same volume or bind source in the project as it is now. A tree the
/// project no longer has is left out with a warning (so an archive cannot
/// name a directory of its own choosing).
fn in_project(project: &Project, trees: Vec<Tree>) -> Vec<(Tree, TreePlan)> {
    let all: Vec<String> = project.services.keys().cloned().collect();
    let (now, _) = crate::backup::plan::trees(project, &all, true);
    let mut out = Vec::new();
    for t in trees {
        match now.iter().find(|n| n.kind == t.kind && n.key == t.key) {
            Some(n) => out.push((t, n.clone())),
            None => eprintln!(
                "berth: warning: {} {} is not in the project now: not restored",
                kind_word(t.kind),
                t.name
            ),
        }
    }
    out
}

/// Where a tree goes back to, as said to the user.
fn destination(plan: &TreePlan) -> String {
    match &plan.engine {
        Some(e) => format!("the Docker Engine's volume {}", e.volume),
        None => plan.dir.display().to_string(),
    }
}

/// The services that mount any of the trees, or have a dump.
fn affected(targets: &[(Tree, TreePlan)], dumps: &[DumpEntry]) -> Vec<String> {
    let mut services: Vec<String> = Vec::new();
    let named = targets
        .iter()
        .flat_map(|(_, plan)| plan.services.iter())
        .chain(dumps.iter().map(|d| &d.service));
    for s in named {
        if !services.contains(s) {
            services.push(s.clone());
        }
    }
    services
}

fn apply(
    project: &Project,
    file: &Path,
    identity: Option<&Path>,
    (targets, dumps): (&[(Tree, TreePlan)], &[DumpEntry]),
    progress: &crate::backup::progress::Progress,
) -> Result<Vec<String>> {
    let stack = Stack::find(project)?;
    let services = affected(targets, dumps);
    let mut lines = Vec::new();
    if let Some(stack) = &stack
        && !services.is_empty()
    {
        lines.extend(stack.stop(&services)?);
    }
    let spools: BTreeMap<String, PathBuf> = dumps
        .iter()
        .map(|d| {
            (
                d.member.clone(),
                project
                    .settings
                    .state_dir
                    .join(format!(".restore-{}.dump", d.service)),
            )
        })
        .collect();
    if let Err(e) = std::fs::create_dir_all(&project.settings.state_dir) {
        return Err(e)
            .with_context(|| format!("cannot create {}", project.settings.state_dir.display()));
    }
    let extract_targets: Vec<Target> = targets
        .iter()
        .map(|(t, plan)| Target {
            prefix: t.prefix.clone(),
            dir: plan.dir.clone(),
        })
        .collect();
    let extracted = extract(file, identity, &extract_targets, &spools, progress)
        .and_then(|()| into_engine(project, targets));
    let started = match &stack {
        Some(stack) if !services.is_empty() => stack.start(&services),
        _ => Ok(Vec::new()),
    };
    let result = extracted.and_then(|()| {
        lines.extend(started?);
        restore_dumps(project, stack.as_ref(), dumps, &spools, &mut lines)
    });
    for spool in spools.values() {
        let _ = std::fs::remove_file(spool);
    }
    result.map(|()| lines)
}

/// Moves the trees staged for the Docker Engine's volumes into them.
fn into_engine(project: &Project, targets: &[(Tree, TreePlan)]) -> Result<()> {
    for (t, plan) in targets {
        let Some(engine) = &plan.engine else {
            continue;
        };
        let imported = crate::backup::container::import_volume(
            &project.name,
            &t.key,
            &engine.volume,
            &engine.image,
            &plan.dir,
        );
        let _ = std::fs::remove_dir_all(&plan.dir);
        imported?;
    }
    Ok(())
}

fn restore_dumps(
    project: &Project,
    stack: Option<&Stack>,
    dumps: &[DumpEntry],
    spools: &BTreeMap<String, PathBuf>,
    lines: &mut Vec<String>,
) -> Result<()> {
    for d in dumps {
        let restore = project
            .services
            .get(&d.service)
            .and_then(|s| s.settings.backup.dump.as_ref())
            .map(|dump| dump.restore.clone());
        let Some(restore) = restore else {
            eprintln!(
                "berth: warning: services.{}: its dump was not restored: the service has no `x-berth.backup.dump.restore` now",
                d.service
            );
            continue;
        };
        let Some(stack) = stack else {
            eprintln!(
                "berth: warning: services.{}: its dump was not restored: the stack is not running (start it, then `berth restore FILE {}`)",
                d.service, d.service
            );
            continue;
        };
        let Some(spool) = spools.get(&d.member) else {
            continue;
        };
        stack.wait_ready(&d.service)?;
        let target = stack.exec_target(&d.service)?;
        run_in(&target, &d.service, &restore, Some(spool), None)
            .with_context(|| format!("services.{}: the dump was not restored", d.service))?;
        lines.push(format!("{}: dump restored", d.service));
    }
    Ok(())
}
