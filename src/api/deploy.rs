//! `POST /v1/deploy`: the running stack loads the file as the client did,
//! compares it with what runs, and (unless it is a dry run) applies the
//! difference: changed services replaced replica by replica and rolled
//! back when a new replica never turns ready, new services started,
//! removed ones stopped with `--remove-orphans`, replica counts followed.
//! Every deploy is an event and a line in `<state_dir>/deploys.log`.

use std::collections::BTreeMap;

use berth_compose::Project;
use berth_compose::diff::{Action, ProjectDiff, ServiceChange, diff};
use berth_engine::ServicePlan;

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

/// Answers a deploy request: the plan, and unless it is a dry run or
/// there is nothing to do, what applying it did. One deploy at a time.
pub async fn deploy(state: &State, request: &Deploy) -> Result<DeployReport, Refused> {
    let _one_at_a_time = state.deploying.lock().await;
    let (new, d) = compare(state, request)?;
    let mut report = planned(&d, request.remove_orphans);
    if request.dry_run || report.nothing_to_do {
        return Ok(report);
    }
    let mut plans: BTreeMap<String, ServicePlan> = berth_engine::plan(&new, &state.inherited)
        .into_iter()
        .map(|p| (p.name.clone(), p))
        .collect();
    for (name, n) in &request.scale {
        if let Some(p) = plans.get_mut(name) {
            p.replicas = *n;
        }
    }
    let touched: Vec<ServicePlan> = d
        .services
        .iter()
        .filter(|c| matches!(c.action, Action::Start | Action::Replace { .. }))
        .filter_map(|c| plans.get(&c.service).cloned())
        .collect();
    let problems = berth_engine::native_problems(&new, &touched);
    if !problems.is_empty() {
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(Refused::Config(text.join("\n")));
    }
    let started = std::time::SystemTime::now();
    let old = state.model();
    let failed = match apply(state, request, &d, &new, &plans, &mut report).await {
        Ok(failed) => failed,
        Err(why) => {
            report.failed = Some(why);
            record(state, &new.files, &report, started);
            return Ok(report);
        }
    };
    if let Some(first) = failed.first() {
        report.failed = Some(format!(
            "the deploy of {} failed and was rolled back; see `berth logs {first}`",
            failed.join(", ")
        ));
    }
    let new_files = new.files.clone();
    if d.proxy {
        report.done.push(
            "proxy: its settings changed; they apply when the stack is started again (berth down, berth up)"
                .to_string(),
        );
    }
    *state
        .running
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) =
        now_running(&old, new, &failed, request);
    record(state, &new_files, &report, started);
    Ok(report)
}

/// The project the stack runs after a deploy: the new one, except the
/// services that failed (still the old), the orphans left running, and
/// the proxy settings (applied at the next start).
fn now_running(old: &Project, new: Project, failed: &[String], request: &Deploy) -> Project {
    let mut running = new;
    for name in failed {
        if let Some(s) = old.services.get(name) {
            running.services.insert(name.clone(), s.clone());
        }
    }
    if !request.remove_orphans {
        for (name, s) in &old.services {
            if !running.services.contains_key(name) {
                running.services.insert(name.clone(), s.clone());
            }
        }
    }
    running.settings.proxy = old.settings.proxy.clone();
    running
}

/// Applies the plan in dependency order: builds of replaced services
/// first (a failing build changes nothing), new services, replacements
/// (a service depending on a failed one is left alone), replica counts,
/// orphans. Returns the services rolled back.
///
/// # Errors
/// A build or a new service that failed: nothing was replaced.
async fn apply(
    state: &State,
    request: &Deploy,
    d: &ProjectDiff,
    new: &Project,
    plans: &BTreeMap<String, ServicePlan>,
    report: &mut DeployReport,
) -> Result<Vec<String>, String> {
    let stack = &state.stack;
    let of = |action: fn(&Action) -> bool| -> Vec<&ServiceChange> {
        d.services.iter().filter(|c| action(&c.action)).collect()
    };
    let replaced = of(|a| matches!(a, Action::Replace { .. }));
    if request.build {
        for c in &replaced {
            if let Some(plan) = plans.get(&c.service) {
                stack.build(plan).await.map_err(|e| e.chain())?;
            }
        }
    }
    let starting = of(|a| *a == Action::Start);
    let new_plans: Vec<ServicePlan> = starting
        .iter()
        .filter_map(|c| plans.get(&c.service).cloned())
        .collect();
    if !new_plans.is_empty() {
        stack
            .add(new_plans, request.build)
            .await
            .map_err(|e| e.chain())?;
        for c in &starting {
            report.done.push(format!("{}: started", c.service));
        }
    }
    let mut failed: Vec<String> = Vec::new();
    for c in replaced {
        let Some(plan) = plans.get(&c.service) else {
            continue;
        };
        if let Some(dep) = depends_on_any(new, &c.service, &failed) {
            report.done.push(format!(
                "{}: not replaced, it depends on {dep}, which failed",
                c.service
            ));
            failed.push(c.service.clone());
            continue;
        }
        match stack
            .replace(&c.service, plan.clone(), plan.deploy_timeout)
            .await
        {
            Ok(lines) => report.done.extend(lines),
            Err(e) => {
                report.done.push(format!(
                    "{}: rolled back, the old version keeps serving ({})",
                    c.service,
                    e.chain()
                ));
                failed.push(c.service.clone());
            }
        }
    }
    scale(state, d, &failed, report).await;
    if request.remove_orphans {
        for c in of(|a| *a == Action::Stop) {
            stack.remove(&c.service).await.map_err(|e| e.chain())?;
            report
                .done
                .push(format!("{}: stopped and removed", c.service));
        }
    }
    Ok(failed)
}

/// Replica counts that changed, for services not failed.
async fn scale(state: &State, d: &ProjectDiff, failed: &[String], report: &mut DeployReport) {
    for c in &d.services {
        let (now, wanted) = c.replicas;
        let new_or_gone = matches!(c.action, Action::Start | Action::Stop);
        if now == wanted || new_or_gone || failed.contains(&c.service) {
            continue;
        }
        match state.stack.scale(&c.service, wanted).await {
            Ok(()) => report
                .done
                .push(format!("{}: scaled {now} -> {wanted}", c.service)),
            Err(e) => report
                .done
                .push(format!("{}: not scaled ({})", c.service, e.chain())),
        }
    }
}

/// A service among `failed` that `service` depends on, directly or not.
fn depends_on_any(project: &Project, service: &str, failed: &[String]) -> Option<String> {
    let mut todo: Vec<&str> = vec![service];
    let mut seen: Vec<&str> = Vec::new();
    while let Some(next) = todo.pop() {
        if seen.contains(&next) {
            continue;
        }
        seen.push(next);
        for dep in project.services.get(next)?.depends_on.keys() {
            if failed.contains(dep) {
                return Some(dep.clone());
            }
            todo.push(dep);
        }
    }
    None
}

/// One line in `<state_dir>/deploys.log` and in the stack's log stream.
fn record(
    state: &State,
    files: &[std::path::PathBuf],
    report: &DeployReport,
    started: std::time::SystemTime,
) {
    let outcome = if report.failed.is_some() {
        "rolled back"
    } else {
        "done"
    };
    let files: Vec<serde_json::Value> = files
        .iter()
        .map(|f| {
            let hash = std::fs::read(f)
                .map(|b| berth_compose::diff::sha256_hex(&b))
                .unwrap_or_default();
            serde_json::json!({"file": f.display().to_string(), "sha256": hash})
        })
        .collect();
    let line = serde_json::json!({
        "time": humantime::format_rfc3339_millis(started).to_string(),
        "files": files,
        "plan": report.plan,
        "done": report.done,
        "outcome": outcome,
        "failed": report.failed,
    });
    state.logs.system(
        "berth",
        0,
        format!("deploy {outcome}: {}", report.plan.join("; ")),
    );
    let path = state.state_dir.join("deploys.log");
    let written = berth_engine::private::append(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()));
    if let Err(e) = written {
        state
            .logs
            .system("berth", 0, format!("cannot write {}: {e}", path.display()));
    }
}
