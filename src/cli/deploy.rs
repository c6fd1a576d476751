//! `berth up` on a running project, `berth up --dry-run` and `berth diff`:
//! the running stack is reconciled with the file as it is now, through
//! the control API (see `api/deploy.rs`).

use std::collections::BTreeMap;

use berth_compose::{LoadOptions, Project};
use clap::Args;

use super::{Failure, Global, print_stdout};
use crate::api::client::{Client, ClientError};
use crate::api::{Deploy, DeployReport};

/// What `up` asks of a running stack.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub services: Vec<String>,
    pub scale: BTreeMap<String, u32>,
    pub remove_orphans: bool,
    pub dry_run: bool,
    pub build: bool,
}

/// Sends the change to the project's running stack. `None` when it is not
/// running (then `up` starts it).
pub fn to_running(
    options: &LoadOptions,
    project: &Project,
    change: Change,
) -> Result<Option<DeployReport>, Failure> {
    let client = Client::new(&project.settings.state_dir, &project.name);
    let request = Deploy {
        load: options.clone(),
        services: change.services,
        scale: change.scale,
        remove_orphans: change.remove_orphans,
        dry_run: change.dry_run,
        build: change.build,
        runtime: project.settings.forced_runtime,
    };
    match super::block_on_raw(client.post::<_, DeployReport>("/v1/deploy", &request))? {
        Ok(report) => Ok(Some(report)),
        Err(ClientError::NotRunning { .. }) => Ok(None),
        Err(e) => Err(Failure::Runtime(anyhow::anyhow!("{e}"))),
    }
}

/// Prints a deploy's plan, what it did and its orphans; a failed deploy is exit 1.
pub fn print(report: &DeployReport, dry_run: bool) -> Result<(), Failure> {
    let mut text = String::new();
    if report.nothing_to_do {
        text.push_str("nothing to do: the running stack matches the file\n");
    } else if dry_run || report.done.is_empty() {
        for line in &report.plan {
            text.push_str(line);
            text.push('\n');
        }
    }
    for line in &report.done {
        text.push_str(line);
        text.push('\n');
    }
    for orphan in &report.orphans {
        text.push_str(&format!(
            "warning: service {orphan} is no longer in the file and keeps running; `berth up --remove-orphans` stops it\n"
        ));
    }
    print_stdout(&text)?;
    match &report.failed {
        None => Ok(()),
        Some(why) => Err(Failure::Runtime(anyhow::anyhow!("{why}"))),
    }
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Replicas of a service, overriding the file (repeatable)
    #[arg(long, value_name = "SERVICE=N", value_parser = super::parse_scale)]
    scale: Vec<(String, u32)>,
    /// Services to compare, with their dependencies (default: all)
    #[arg(value_name = "SERVICE")]
    services: Vec<String>,
}

/// `berth diff`: what `berth up` would change in the running stack.
pub fn diff(global: &Global, args: DiffArgs) -> Result<(), Failure> {
    let options = global.load_options(&args.services)?;
    let project = super::load(&options)?.project;
    let change = Change {
        services: args.services,
        scale: args.scale.into_iter().collect(),
        dry_run: true,
        ..Change::default()
    };
    match to_running(&options, &project, change)? {
        Some(report) => print(&report, true),
        None => Err(Failure::Runtime(anyhow::anyhow!(
            "project {} is not running; `berth up` would start every service",
            project.name
        ))),
    }
}
