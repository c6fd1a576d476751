//! `POST /v1/deploy`: the running stack loads the file as the client did,
//! compares it with what runs, and (unless it is a dry run) applies the
//! difference: changed services replaced replica by replica and rolled
//! back when a new replica never turns ready, new services started,
//! removed ones stopped with `--remove-orphans`, replica counts followed.
//! Every deploy is an event and a line in `<state_dir>/deploys.log`.

use std::collections::BTreeMap;

use berth_compose::Project;
use berth_compose::diff::{Action, ProjectDiff, diff};

use super::state::State;
use super::{Deploy, DeployReport};

/// Why a deploy request is refused before anything changes.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("{0}")]
    Config(String),
    #[error("the project is {new:?} but the running stack is {running:?}")]
    OtherProject { new: String, running: String },
    #[error("--scale {0}=…: no such service")]
    UnknownScale(String),
}

/// Loads the file as the client did and compares it with what runs.
pub fn compare(state: &State, request: &Deploy) -> Result<(Project, ProjectDiff), Refused> {
    let loaded = berth_compose::load(&request.load.options())
        .map_err(|d| Refused::Config(d.render(false)))?;
    let mut new = loaded.project;
    if new.name != state.project {
        return Err(Refused::OtherProject {
            new: new.name,
            running: state.project.clone(),
        });
    }
    if !request.services.is_empty() {
        new.retain_with_dependencies(&request.services);
    }
    if let Some(name) = request
        .scale
        .keys()
        .find(|n| !new.services.contains_key(*n))
    {
        return Err(Refused::UnknownScale(name.clone()));
    }
    let running = state.model();
    let now: BTreeMap<String, u32> = state
        .stack
        .services()
        .iter()
        .map(|cell| {
            let n = u32::try_from(cell.snapshot().len()).unwrap_or(u32::MAX);
            (cell.name().to_string(), n)
        })
        .collect();
    let mut d = diff(&running, &now, &new, &request.scale);
    if !request.services.is_empty() {
        // Services not named (nor needed by those named) are left alone.
        d.services.retain(|c| new.services.contains_key(&c.service));
    }
    Ok((new, d))
}

/// The report of a plan before anything is applied.
pub fn planned(d: &ProjectDiff, remove_orphans: bool) -> DeployReport {
    let mut plan: Vec<String> = d.services.iter().map(ToString::to_string).collect();
    if d.proxy {
        plan.push("proxy: settings changed".to_string());
    }
    let orphans = if remove_orphans {
        Vec::new()
    } else {
        d.services
            .iter()
            .filter(|c| c.action == Action::Stop)
            .map(|c| c.service.clone())
            .collect()
    };
    DeployReport {
        plan,
        nothing_to_do: d.is_empty(),
        orphans,
        ..DeployReport::default()
    }
}
