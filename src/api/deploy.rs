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

use super::edge::ProxyChange;
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
    #[error(
        "networks.{key} changed ({fields}) while containers are on it: the Docker Engine cannot change a network in place; `berth down` then `berth up` makes it again (nothing was deployed)"
    )]
    NetworkChanged { key: String, fields: String },
    #[error(
        "the stack runs {running}; a running stack keeps its runtime: `berth down` then `berth up --runtime {asked}` switches it (nothing was deployed)"
    )]
    OtherRuntime { running: String, asked: String },
}

/// Loads the file as the client did and compares it with what runs.
pub fn compare(state: &State, request: &Deploy) -> Result<(Project, ProjectDiff), Refused> {
    let loaded =
        berth_compose::load(&request.load).map_err(|d| Refused::Config(d.render(false)))?;
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
    // `up --runtime` holds for the stack's whole run.
    new.settings.forced_runtime = running.settings.forced_runtime;
    if let Some(refused) = other_runtime(&running, request.runtime) {
        return Err(refused);
    }
    if let Some(refused) = changed_network(&running, &new) {
        return Err(refused);
    }
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

/// `up --runtime` asking for another runtime than the stack runs with
/// (`auto` and none are the same: each service's own).
fn other_runtime(
    running: &Project,
    asked: Option<berth_compose::RuntimeChoice>,
) -> Option<Refused> {
    use berth_compose::RuntimeChoice;
    let forced = |c: Option<RuntimeChoice>| c.filter(|c| *c != RuntimeChoice::Auto);
    let now = forced(running.settings.forced_runtime);
    let asked = forced(Some(asked?));
    let name = |c: Option<RuntimeChoice>| match c {
        Some(RuntimeChoice::Docker) => "docker",
        Some(RuntimeChoice::Native) => "native",
        _ => "auto",
    };
    (asked != now).then(|| Refused::OtherRuntime {
        running: match now {
            Some(_) => format!("with --runtime {}", name(now)),
            None => "each service in its own runtime".into(),
        },
        asked: name(asked).into(),
    })
}

/// A network the stack's containers are on whose definition the file now
/// changes (as `docker compose` v1, a deploy is refused rather than the
/// change silently left out).
fn changed_network(running: &Project, new: &Project) -> Option<Refused> {
    let in_use = |key: &str| {
        running.services.values().any(|s| {
            running.runtime_of(s, None) == berth_compose::RuntimeKind::Docker
                && s.other
                    .get("networks")
                    .and_then(serde_json::Value::as_object)
                    .map_or(key == "default", |joined| joined.contains_key(key))
        })
    };
    running.networks.iter().find_map(|(key, old)| {
        let now = new.networks.get(key)?;
        if now == old || !in_use(key) {
            return None;
        }
        let field = |v: &serde_json::Value, k: &str| v.get(k).cloned();
        let mut fields: Vec<&str> = old
            .as_object()
            .into_iter()
            .chain(now.as_object())
            .flat_map(|m| m.keys().map(String::as_str))
            .filter(|k| field(old, k) != field(now, k))
            .collect();
        fields.sort_unstable();
        fields.dedup();
        Some(Refused::NetworkChanged {
            key: key.clone(),
            fields: fields.join(", "),
        })
    })
}

/// The report of a plan before anything is applied.
pub fn planned(d: &ProjectDiff, proxy: &ProxyChange, remove_orphans: bool) -> DeployReport {
    let mut plan: Vec<String> = d.services.iter().map(ToString::to_string).collect();
    plan.extend(proxy.lines());
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
    let (new, mut d) = compare(state, request)?;
    let proxy = ProxyChange::of(
        state.model().settings.proxy.as_ref(),
        new.settings.proxy.as_ref(),
    );
    if let Err(why) = images(state, request, &new, &mut d).await {
        let mut report = planned(&d, &proxy, request.remove_orphans);
        report.failed = Some(format!("{why}; nothing was changed"));
        return Ok(report);
    }
    let mut report = planned(&d, &proxy, request.remove_orphans);
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
    let mut routes_applied = false;
    let steps = Steps {
        request,
        d: &d,
        new: &new,
        plans: &plans,
        proxy: &proxy,
    };
    let failed = match apply(state, &steps, &mut report, &mut routes_applied).await {
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
    if !proxy.later.is_empty() {
        report.done.push(format!(
            "proxy: {} changed; applied when the stack is started again (berth down, berth up)",
            proxy.later.join(", ")
        ));
    }
    *state
        .running
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) =
        now_running(&old, new, &failed, request, routes_applied);
    record(state, &new_files, &report, started);
    Ok(report)
}

/// A container service whose image changed since its containers were
/// created (the same tag names a new image ID: a `docker build` since, or
/// the build here) is replaced as a changed one is. With `--build`, not
/// in a dry run, the images of services with `build:` are built again
/// first (the engine's cache makes an unchanged one the same image).
///
/// # Errors
/// A failed image build, with the builder's message.
async fn images(
    state: &State,
    request: &Deploy,
    new: &Project,
    d: &mut ProjectDiff,
) -> Result<(), String> {
    let plans: Vec<ServicePlan> = berth_engine::plan(new, &state.inherited)
        .into_iter()
        .filter(|p| p.container.is_some())
        .collect();
    if plans.is_empty() {
        return Ok(());
    }
    let Ok(docker) = berth_engine::runtime::docker::DockerRuntime::connect(&new.name).await else {
        return Ok(());
    };
    for plan in &plans {
        let Some(c) = &plan.container else { continue };
        let Some(image) = &c.image else { continue };
        if let (Some(build), true) = (&c.build, request.build && !request.dry_run) {
            state
                .logs
                .system(&plan.name, 0, format!("building image {image}"));
            docker
                .build(image, build, |line| {
                    state.logs.system(&plan.name, 0, line.to_string());
                })
                .await
                .map_err(|e| format!("the image build of service {} failed: {e}", plan.name))?;
        }
        let kept = d
            .services
            .iter_mut()
            .find(|c| c.service == plan.name && c.action == Action::Keep);
        if let Some(change) = kept
            && docker.image_changed(&plan.name, image).await
        {
            change.action = Action::Replace {
                keys: vec!["image ID".into()],
            };
        }
    }
    Ok(())
}

/// The project the stack runs after a deploy: the new one, except the
/// services that failed (still the old), the orphans left running, and
/// the proxy settings but what a running proxy took live (the rest
/// applies at the next start).
fn now_running(
    old: &Project,
    new: Project,
    failed: &[String],
    request: &Deploy,
    routes_applied: bool,
) -> Project {
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
    let new_proxy = running.settings.proxy.take();
    running.settings.proxy = old.settings.proxy.clone();
    if routes_applied && let (Some(p), Some(new)) = (running.settings.proxy.as_mut(), new_proxy) {
        super::edge::take_live(p, new);
    }
    running
}

/// What a deploy applies.
#[derive(Clone, Copy)]
struct Steps<'a> {
    request: &'a Deploy,
    d: &'a ProjectDiff,
    new: &'a Project,
    plans: &'a BTreeMap<String, ServicePlan>,
    proxy: &'a ProxyChange,
}

/// Applies the plan in dependency order: builds of replaced services
/// first (a failing build changes nothing), new services (awaited until
/// ready), replacements (a service depending on a failed one is left
/// alone), the proxy's routes, replica counts, orphans. Returns the
/// services rolled back.
///
/// # Errors
/// A build or a new service that failed: nothing was replaced.
async fn apply(
    state: &State,
    steps: &Steps<'_>,
    report: &mut DeployReport,
    routes_applied: &mut bool,
) -> Result<Vec<String>, String> {
    let Steps {
        request,
        d,
        new,
        plans,
        proxy,
    } = *steps;
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
    let unready = start_new(state, steps, &of(|a| *a == Action::Start), report).await?;
    let mut failed: Vec<String> = Vec::new();
    for c in replaced {
        let Some(plan) = plans.get(&c.service) else {
            continue;
        };
        let broken: Vec<String> = failed.iter().chain(&unready).cloned().collect();
        if let Some(dep) = depends_on_any(new, &c.service, &broken) {
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
    // Routes to new services once they run, away from orphans before they
    // stop; compiled again when a routed service's ports changed.
    let ports_changed = d.services.iter().any(|c| {
        matches!(&c.action, Action::Replace { keys } if keys.iter().any(|k| k == "ports" || k == "expose"))
    });
    *routes_applied =
        (!proxy.live.is_empty() || ports_changed) && super::edge::apply(state, new, report);
    scale(state, d, &failed, report).await;
    if let Some(first) = unready.first() {
        report.failed = Some(format!(
            "{} started but did not turn ready; see `berth logs {first}`",
            unready.join(", ")
        ));
    }
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

/// Starts the new services and waits for them to be ready (each within
/// its deploy timeout); returns those that were not.
///
/// # Errors
/// A port in use, a failed build or volume: none of them runs.
async fn start_new(
    state: &State,
    steps: &Steps<'_>,
    starting: &[&ServiceChange],
    report: &mut DeployReport,
) -> Result<Vec<String>, String> {
    let new_plans: Vec<ServicePlan> = starting
        .iter()
        .filter_map(|c| steps.plans.get(&c.service).cloned())
        .collect();
    if new_plans.is_empty() {
        return Ok(Vec::new());
    }
    state
        .stack
        .add(new_plans, steps.request.build)
        .await
        .map_err(|e| e.chain())?;
    let mut unready = Vec::new();
    for c in starting {
        let Some(plan) = steps.plans.get(&c.service) else {
            continue;
        };
        if until_ready(state, &c.service, plan.deploy_timeout).await {
            report.done.push(format!("{}: started", c.service));
        } else {
            report.done.push(format!(
                "{}: started, but not ready within {}s",
                c.service,
                plan.deploy_timeout.as_secs()
            ));
            unready.push(c.service.clone());
        }
    }
    Ok(unready)
}

/// Waits until every replica of a service is ready (or a one-shot job
/// completed), up to `limit`; whether they all were.
async fn until_ready(state: &State, service: &str, limit: std::time::Duration) -> bool {
    let Some(cell) = state.stack.service(service) else {
        return false;
    };
    let mut rx = cell.subscribe();
    let all_ready = |snap: &berth_engine::Snapshot| {
        snap.iter().all(|r| {
            (r.state == berth_engine::ReplicaState::Running && r.ready)
                || (r.state == berth_engine::ReplicaState::Exited
                    && r.exit.is_some_and(berth_engine::Exit::success))
        })
    };
    let wait = async {
        loop {
            if all_ready(&rx.borrow_and_update()) {
                return true;
            }
            if rx.changed().await.is_err() {
                return false;
            }
        }
    };
    tokio::time::timeout(limit, wait).await.unwrap_or(false)
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
    let message = format!("deploy {outcome}: {}", report.plan.join("; "));
    state.logs.system("berth", 0, message.clone());
    let _ = state.deploys.send(serde_json::json!({
        "ts": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        "kind": "deploy",
        "outcome": outcome,
        "plan": report.plan,
        "done": report.done,
        "failed": report.failed,
        "message": message,
    }));
    let path = state.state_dir.join("deploys.log");
    let written = berth_engine::private::append(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()));
    if let Err(e) = written {
        state
            .logs
            .system("berth", 0, format!("cannot write {}: {e}", path.display()));
    }
}
