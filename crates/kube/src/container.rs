//! A service's main container: image, command, environment, ports,
//! resources, lifecycle hooks.

use std::collections::BTreeMap;

use berth_compose::{Resource, Service};
use k8s_openapi::api::core::v1::{
    Container, EnvFromSource, ExecAction, Lifecycle, LifecycleHandler, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::Value as Json;

use crate::context::Ctx;
use crate::network::{container_ports, declared};
use crate::storage::Mounts;
use crate::{env, probes, security, units};

/// Whether the service runs natively under berth: a `command`, no image
/// to run it in.
pub(crate) fn is_native(s: &Service) -> bool {
    s.image.is_none() && !s.other.contains_key("build")
}

/// The image to run: `--image`, else `x-berth.kube.image`, else the built
/// image (`image:`, or `PROJECT-SERVICE` as Compose names it) with
/// `--image-prefix` before it unless it names a registry, else `image`.
pub(crate) fn image(ctx: &Ctx<'_>, s: &Service) -> Option<String> {
    if let Some(image) = ctx.options.images.get(&s.name) {
        return Some(image.clone());
    }
    if let Some(image) = &s.settings.kube.image {
        return Some(image.clone());
    }
    if s.other.contains_key("build") {
        let built = s
            .image
            .clone()
            .unwrap_or_else(|| format!("{}-{}", ctx.project.name, s.name));
        return Some(match ctx.options.image_prefix.as_deref() {
            Some(prefix) if !has_registry(&built) => format!("{prefix}{built}"),
            _ => built,
        });
    }
    s.image.clone()
}

/// Whether an image reference names a registry host (`ghcr.io/x`,
/// `localhost:5000/x`) rather than Docker Hub.
fn has_registry(image: &str) -> bool {
    image.split_once('/').is_some_and(|(first, _)| {
        first.contains('.') || first.contains(':') || first == "localhost"
    })
}

/// The main container; `env_from` is the service's environment ConfigMap.
pub(crate) fn main(
    ctx: &mut Ctx<'_>,
    s: &Service,
    env_from: Option<EnvFromSource>,
    mounts: &Mounts,
) -> Container {
    let native = is_native(s);
    let image = image(ctx, s);
    if s.other.contains_key("build")
        && ctx.options.image_prefix.is_none()
        && !ctx.options.images.contains_key(&s.name)
        && s.settings.kube.image.is_none()
    {
        let image = image.clone().unwrap_or_default();
        if !has_registry(&image) {
            ctx.warn(
                format!("services.{}.build", s.name),
                format!("the image {image} is built here and is in no registry the cluster can pull from: push it, and pass --image-prefix REGISTRY/ (or x-berth.kube.image)"),
            );
        }
    }
    let (command, args) = command(ctx, s, native);
    let ports: Vec<u16> = declared(s).iter().map(|d| d.port).collect();
    let env = if native {
        env::native_variables(ctx, s, &ports, &mounts.targets)
    } else {
        Vec::new()
    };
    let probes = probes::probes(ctx, s, crate::network::first_tcp(s));
    Container {
        name: ctx.name(&s.name),
        image,
        image_pull_policy: pull_policy(ctx, s),
        command,
        args,
        working_dir: working_dir(ctx, s, native),
        env: (!env.is_empty()).then_some(env),
        env_from: env_from.map(|e| vec![e]),
        ports: container_ports(s),
        resources: resources(ctx, s),
        security_context: security::container(ctx, s),
        readiness_probe: probes.readiness,
        liveness_probe: probes.liveness,
        startup_probe: probes.startup,
        lifecycle: lifecycle(ctx, s),
        stdin: s
            .other
            .get("stdin_open")
            .and_then(Json::as_bool)
            .filter(|b| *b),
        tty: s.other.get("tty").and_then(Json::as_bool).filter(|b| *b),
        volume_mounts: (!mounts.mounts.is_empty()).then(|| mounts.mounts.clone()),
        ..Container::default()
    }
}

/// Compose's `entrypoint` is Kubernetes' `command`, Compose's `command` its
/// `args`. A native service's argv is the whole command: its image has no
/// entrypoint of berth's to add to.
fn command(
    ctx: &mut Ctx<'_>,
    s: &Service,
    native: bool,
) -> (Option<Vec<String>>, Option<Vec<String>>) {
    if native {
        let argv = s.argv();
        return ((!argv.is_empty()).then_some(argv), None);
    }
    for (field, value) in [("entrypoint", &s.entrypoint), ("command", &s.command)] {
        if value.as_ref().is_some_and(Vec::is_empty) {
            ctx.warn(
                format!("services.{}.{field}", s.name),
                format!(
                    "an empty {field} cannot clear the image's in Kubernetes: the image's applies"
                ),
            );
        }
    }
    let nonempty = |v: &Option<Vec<String>>| v.clone().filter(|v| !v.is_empty());
    (nonempty(&s.entrypoint), nonempty(&s.command))
}

fn working_dir(ctx: &mut Ctx<'_>, s: &Service, native: bool) -> Option<String> {
    let dir = s.working_dir.as_ref()?;
    if dir.starts_with('/') {
        return Some(dir.clone());
    }
    let why = if native {
        "is relative to the project directory natively; the container starts in its image's \
         WORKDIR: make that the directory, or write an absolute path"
    } else {
        "is not an absolute path: the container starts in its image's WORKDIR"
    };
    ctx.warn(
        format!("services.{}.working_dir", s.name),
        format!("{dir:?} {why}"),
    );
    None
}

fn pull_policy(ctx: &mut Ctx<'_>, s: &Service) -> Option<String> {
    let policy = s.other.get("pull_policy").and_then(Json::as_str)?;
    match policy {
        "always" => Some("Always".into()),
        "never" => Some("Never".into()),
        "missing" | "if_not_present" => Some("IfNotPresent".into()),
        other => {
            ctx.warn(
                format!("services.{}.pull_policy", s.name),
                format!("{other:?} has no Kubernetes equivalent: the kubelet's default applies"),
            );
            None
        }
    }
}

/// `deploy.resources` (and the older `cpus`, `mem_limit`, `mem_reservation`).
fn resources(ctx: &mut Ctx<'_>, s: &Service) -> Option<ResourceRequirements> {
    let r = s.deploy.as_ref().and_then(|d| d.resources.as_ref());
    let place = format!("services.{}.deploy.resources", s.name);
    let limits = r.and_then(|r| r.limits.as_ref());
    let reservations = r.and_then(|r| r.reservations.as_ref());
    for (which, res) in [("limits", limits), ("reservations", reservations)] {
        let Some(res) = res else { continue };
        if res.pids.is_some() {
            ctx.warn(format!("{place}.{which}.pids"), "left out: Kubernetes limits processes per node (the kubelet's podPidsLimit), not in a pod spec");
        }
        if res.devices.is_some() || res.generic_resources.is_some() {
            ctx.warn(format!("{place}.{which}"), "devices and generic resources are left out: request them as extended resources of a device plugin (e.g. nvidia.com/gpu)");
        }
    }
    let legacy_cpu = s.other.get("cpus").and_then(json_f64);
    let legacy_mem = s.other.get("mem_limit").and_then(json_bytes);
    let legacy_res = s.other.get("mem_reservation").and_then(json_bytes);
    let limits = quantities(limits, legacy_cpu, legacy_mem);
    let requests = quantities(reservations, None, legacy_res);
    if limits.is_empty() && requests.is_empty() {
        return None;
    }
    Some(ResourceRequirements {
        limits: (!limits.is_empty()).then_some(limits),
        requests: (!requests.is_empty()).then_some(requests),
        ..ResourceRequirements::default()
    })
}

fn quantities(
    r: Option<&Resource>,
    cpu: Option<f64>,
    memory: Option<u64>,
) -> BTreeMap<String, Quantity> {
    let mut out = BTreeMap::new();
    if let Some(q) = r.and_then(|r| r.cpus).or(cpu).and_then(units::cpus) {
        out.insert("cpu".to_string(), q);
    }
    if let Some(bytes) = r
        .and_then(|r| r.memory)
        .map(|m| m.0)
        .or(memory)
        .filter(|b| *b > 0)
    {
        out.insert("memory".to_string(), units::bytes(bytes));
    }
    out
}

fn json_f64(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn json_bytes(v: &Json) -> Option<u64> {
    match v {
        Json::Number(n) => n.as_u64(),
        Json::String(s) => berth_compose::ByteSize::parse(s).ok().map(|b| b.0),
        _ => None,
    }
}

/// `post_start` and `pre_stop`: the first hook's command each.
fn lifecycle(ctx: &mut Ctx<'_>, s: &Service) -> Option<Lifecycle> {
    let mut hook = |field: &str| -> Option<LifecycleHandler> {
        let hooks = s.other.get(field)?.as_array()?;
        let place = format!("services.{}.{field}", s.name);
        if hooks.len() > 1 {
            ctx.warn(&place, "Kubernetes runs one hook: only the first is kept");
        }
        let first = hooks.first()?;
        if ["user", "privileged", "working_dir", "environment"]
            .iter()
            .any(|k| first.get(k).is_some())
        {
            ctx.warn(&place, "user, privileged, working_dir and environment of a hook are left out: it runs like the container");
        }
        let command: Vec<String> = match first.get("command")? {
            Json::String(s) => {
                shlex::split(s).unwrap_or_else(|| vec!["sh".into(), "-c".into(), s.clone()])
            }
            Json::Array(a) => a
                .iter()
                .filter_map(Json::as_str)
                .map(str::to_string)
                .collect(),
            _ => return None,
        };
        Some(LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(command),
            }),
            ..LifecycleHandler::default()
        })
    };
    let post_start = hook("post_start");
    let pre_stop = hook("pre_stop");
    (post_start.is_some() || pre_stop.is_some()).then(|| Lifecycle {
        post_start,
        pre_stop,
        ..Lifecycle::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_are_told_from_docker_hub_names() {
        assert!(has_registry("ghcr.io/org/app:1"));
        assert!(has_registry("localhost:5000/app"));
        assert!(has_registry("localhost/app"));
        assert!(!has_registry("org/app"));
        assert!(!has_registry("app:1.0"));
        assert!(!has_registry("berth-demo-api"));
    }
}
