//! berth-kube: a loaded Compose [`Project`] to Kubernetes manifests.
//!
//! [`export`] is a pure function: the project and the [`Options`] in, the
//! objects (typed with k8s-openapi) and the warnings out; no I/O. The few
//! files it needs (`configs:` files) are read by the caller, who asks
//! [`files_to_read`] which. Every Compose field becomes something in the
//! manifests or a [`Warning`] that says what happens instead; the output
//! is deterministic, so it diffs cleanly in git.
//!
//! # Layout
//! - `options`, `model`: what goes in and comes out.
//! - `names`, `units`, `labels`: names, durations and sizes, labels as
//!   Kubernetes wants them.
//! - `context`: what every rule reads (project, options, names, the
//!   workload kind of each service) and the warnings.
//! - `workload` (Deployment, StatefulSet, Job) -> `pod` -> `container`,
//!   with `probes`, `security`, `host`, `storage`, `files`, `wait`.
//! - `env`: environments to ConfigMaps; `network`: Services; `ingress`:
//!   the proxy's routes; `fields`: what is left out, and why.
//! - `render`: YAML/JSON streams, files and `kustomization.yaml`.

mod container;
mod context;
mod env;
mod fields;
mod files;
mod host;
mod ingress;
mod labels;
mod model;
pub mod names;
mod network;
mod options;
mod pod;
mod probes;
pub mod render;
mod security;
mod storage;
pub mod units;
mod wait;
mod workload;

use std::collections::HashMap;

use berth_compose::{Condition, Project};
use k8s_openapi::api::core::v1::ConfigMap;
use sha2::{Digest, Sha256};

pub use files::files_to_read;
pub use model::{Error, Export, Object, Warning};
pub use options::{DEFAULT_WAIT_IMAGE, KubeVersion, Options};

use context::{Ctx, Kind};

/// Exports a project.
///
/// # Errors
/// [`Error::NeedsImage`] listing every native service without an image,
/// [`Error::Namespace`] for an invalid `--namespace`, and
/// [`Error::UnknownService`] for an `--image` of no service.
pub fn export(project: &Project, options: &Options) -> Result<Export, Error> {
    check(project, options)?;
    let mut ctx = Ctx::new(project, options);
    rename_warnings(&mut ctx);
    network::network_warnings(&mut ctx);
    let mut objects = Vec::new();
    if waits_for_jobs(&ctx) {
        objects.extend(wait::job_reader(&ctx));
    }
    let config_maps = files::objects(&mut ctx);
    let mut env_maps = Vec::new();
    let mut env_from = indexmap::IndexMap::new();
    let mut services = Vec::new();
    for s in project.services.values() {
        fields::warn_left_out(&mut ctx, s);
        if let Some((map, from)) = env::config_map(&mut ctx, s) {
            env_maps.push(map);
            env_from.insert(s.name.clone(), from);
        }
        services.extend(network::services(&mut ctx, s));
    }
    let claims = storage::claims(&mut ctx);
    let maps: HashMap<&str, &ConfigMap> = env_maps
        .iter()
        .chain(&config_maps)
        .filter_map(|o| match o {
            Object::ConfigMap(m) => Some((m.metadata.name.as_deref()?, m.as_ref())),
            _ => None,
        })
        .collect();
    let mut workloads = Vec::new();
    for name in project.start_order() {
        let Some(s) = project.services.get(name) else {
            continue;
        };
        let hash = config_hash(&ctx, s, &maps);
        workloads.push(workload::workload(
            &mut ctx,
            s,
            env_from.get(name).cloned(),
            hash,
        ));
    }
    objects.extend(config_maps);
    objects.extend(env_maps);
    objects.extend(claims);
    objects.extend(services);
    objects.extend(workloads);
    objects.extend(ingress::ingresses(&mut ctx));
    let mut warnings = ctx.warnings;
    sort_warnings(project, &mut warnings);
    Ok(Export { objects, warnings })
}

/// Warnings about services first, in the order of the file, then the
/// others (volumes, secrets, configs, the proxy), each group in the order
/// they were found.
fn sort_warnings(project: &Project, warnings: &mut [Warning]) {
    let index: HashMap<&str, usize> = project
        .services
        .keys()
        .enumerate()
        .map(|(i, name)| (name.as_str(), i))
        .collect();
    // `services.NAME[.field…]`; a name may hold dots: the longest that is
    // a service wins.
    let position = |place: &str| -> usize {
        let Some(rest) = place.strip_prefix("services.") else {
            return usize::MAX;
        };
        let ends = rest.match_indices('.').map(|(i, _)| i).chain([rest.len()]);
        ends.filter_map(|end| rest.get(..end).and_then(|name| index.get(name)).copied())
            .next_back()
            .unwrap_or(usize::MAX)
    };
    warnings.sort_by_cached_key(|w| position(&w.place));
}

fn check(project: &Project, options: &Options) -> Result<(), Error> {
    if let Some(ns) = &options.namespace
        && !names::is_dns_label(ns)
    {
        return Err(Error::Namespace(
            ns.clone(),
            "lowercase letters, digits and '-', at most 63, not starting or ending with '-'".into(),
        ));
    }
    if let Some(unknown) = options
        .images
        .keys()
        .find(|k| !project.services.contains_key(*k))
    {
        return Err(Error::UnknownService(unknown.clone()));
    }
    let missing: Vec<String> = project
        .services
        .values()
        .filter(|s| {
            container::is_native(s)
                && s.settings.kube.image.is_none()
                && !options.images.contains_key(&s.name)
        })
        .map(|s| s.name.clone())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::NeedsImage(missing))
    }
}

fn rename_warnings(ctx: &mut Ctx<'_>) {
    let renamed: Vec<(String, String)> = ctx
        .services
        .iter()
        .filter(|(original, name)| original.to_ascii_lowercase() != *name)
        .map(|(o, n)| (o.to_string(), n.to_string()))
        .collect();
    for (original, name) in renamed {
        ctx.warn(
            format!("services.{original}"),
            format!(
                "named {name} in Kubernetes (names are DNS labels): other services reach it at \
                 {name}, not {original}; change the host names that refer to it"
            ),
        );
    }
}

/// Whether some pod waits for a Job (and needs to read Jobs).
fn waits_for_jobs(ctx: &Ctx<'_>) -> bool {
    ctx.project.services.values().any(|s| {
        s.depends_on.iter().any(|(dep, d)| {
            d.required
                && d.condition == Condition::ServiceCompletedSuccessfully
                && ctx.kind(dep) == Kind::Job
        })
    })
}

/// A hash of what a service's pods read from ConfigMaps: when it changes,
/// so does the pod template, and the pods are replaced.
fn config_hash(
    ctx: &Ctx<'_>,
    s: &berth_compose::Service,
    maps: &HashMap<&str, &ConfigMap>,
) -> Option<String> {
    let env_name = context::env_map_name(&ctx.name(&s.name));
    let mounted = s
        .other
        .get("configs")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("source").and_then(serde_json::Value::as_str))
        .map(|source| ctx.configs.get(source));
    let read: Vec<&ConfigMap> = std::iter::once(env_name)
        .chain(mounted)
        .filter_map(|name| maps.get(name.as_str()).copied())
        .collect();
    if read.is_empty() {
        return None;
    }
    let mut hasher = Sha256::new();
    for m in read {
        hasher.update(serde_json::to_vec(&(&m.data, &m.binary_data)).unwrap_or_default());
    }
    let digest = hasher.finalize();
    Some(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
}
