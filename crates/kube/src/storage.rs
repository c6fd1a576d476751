//! Volumes: named volumes to PersistentVolumeClaims (bound by the default
//! StorageClass), anonymous volumes and `tmpfs` to `emptyDir`, `shm_size`
//! to a memory `emptyDir` at `/dev/shm`; bind mounts are warned about,
//! never dropped silently.

use std::collections::BTreeMap;
use std::path::Path;

use berth_compose::{ByteSize, Service, ServiceVolumeConfig, VolumeKind};
use k8s_openapi::api::core::v1::{
    EmptyDirVolumeSource, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value as Json;

use crate::context::{Ctx, Kind, component};
use crate::model::Object;
use crate::names::{dns_label, is_dns_subdomain};
use crate::units;

/// The size of a claim when no `x-berth.kube.storage` says otherwise.
pub const DEFAULT_STORAGE: u64 = 1 << 30;

/// A pod's volumes and its main container's mounts.
#[derive(Debug, Default)]
pub(crate) struct Mounts {
    pub volumes: Vec<Volume>,
    pub mounts: Vec<VolumeMount>,
    /// For a StatefulSet: one claim per pod for the volumes only it uses.
    pub claim_templates: Vec<PersistentVolumeClaim>,
    /// Where volumes are mounted (for `BERTH_VOLUME_*`).
    pub targets: Vec<String>,
}

impl Mounts {
    /// Adds a pod volume unless one of that name is there, and a mount of it.
    pub(crate) fn add(&mut self, volume: Volume, mount: VolumeMount) {
        if !self.volumes.iter().any(|v| v.name == volume.name) {
            self.volumes.push(volume);
        }
        self.mount(mount);
    }

    pub(crate) fn mount(&mut self, mount: VolumeMount) {
        self.targets.push(mount.mount_path.clone());
        self.mounts.push(mount);
    }
}

fn mount(name: &str, target: &str) -> VolumeMount {
    VolumeMount {
        name: name.to_string(),
        mount_path: target.to_string(),
        ..VolumeMount::default()
    }
}

/// The services mounting a named volume.
fn users<'p>(ctx: &Ctx<'p>, key: &str) -> Vec<&'p Service> {
    ctx.volume_users
        .get(key)
        .into_iter()
        .flatten()
        .filter_map(|name| ctx.project.services.get(name))
        .collect()
}

fn is_external(ctx: &Ctx<'_>, key: &str) -> bool {
    ctx.project
        .volumes
        .get(key)
        .and_then(|v| v.get("external"))
        .and_then(Json::as_bool)
        .unwrap_or(false)
}

/// Whether a volume becomes a claim template of this service's StatefulSet
/// (one claim per pod) rather than one claim shared by every user.
fn is_template(ctx: &Ctx<'_>, s: &Service, key: &str) -> bool {
    ctx.kind(&s.name) == Kind::StatefulSet
        && !is_external(ctx, key)
        && ctx
            .volume_users
            .get(key)
            .is_some_and(|users| users.iter().all(|u| *u == s.name))
}

/// The claim of a named volume: its size is the largest any user asks for.
fn claim(ctx: &Ctx<'_>, key: &str, name: &str, namespaced: bool) -> PersistentVolumeClaim {
    let size = users(ctx, key)
        .iter()
        .filter_map(|s| s.settings.kube.storage)
        .max()
        .unwrap_or(ByteSize(DEFAULT_STORAGE));
    let mut metadata = ctx.meta(name, name, component::STORAGE);
    if !namespaced {
        metadata = ObjectMeta {
            name: metadata.name,
            labels: metadata.labels,
            ..ObjectMeta::default()
        };
    }
    PersistentVolumeClaim {
        metadata,
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".into(), units::bytes(size.0))])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// Claims for the named volumes that are not one StatefulSet's own, in
/// the order of the top-level `volumes`; warnings for what a claim cannot
/// carry over.
pub(crate) fn claims(ctx: &mut Ctx<'_>) -> Vec<Object> {
    let mut out = Vec::new();
    for (key, spec) in &ctx.project.volumes {
        let users = users(ctx, key);
        if users.is_empty() {
            continue;
        }
        let place = format!("volumes.{key}");
        for field in ["driver", "driver_opts"] {
            if spec.get(field).is_some() {
                ctx.warn(
                    format!("{place}.{field}"),
                    "not exported: the claim is provisioned by the default StorageClass",
                );
            }
        }
        shared_volume_warning(ctx, key, &users);
        if is_external(ctx, key) {
            let claim = external_claim(ctx, key);
            ctx.warn(
                place,
                format!(
                    "external: the pods use the claim {claim}, which must exist in the namespace"
                ),
            );
            continue;
        }
        if let [only] = users.as_slice()
            && is_template(ctx, only, key)
        {
            continue;
        }
        let name = ctx.volumes.get(key);
        out.push(Object::from(claim(ctx, key, &name, true)));
    }
    out
}

/// A ReadWriteOnce claim attaches to one node: warn when several pods
/// would mount it.
fn shared_volume_warning(ctx: &mut Ctx<'_>, key: &str, users: &[&Service]) {
    let pods: u32 = users
        .iter()
        .map(|s| match ctx.kind(&s.name) {
            Kind::StatefulSet if is_template(ctx, s, key) => 1,
            _ => s.replicas().max(1),
        })
        .fold(0, u32::saturating_add);
    if pods <= 1 {
        return;
    }
    let who: Vec<String> = users
        .iter()
        .map(|s| match s.replicas() {
            n if n > 1 && !is_template(ctx, s, key) => format!("{} ({n} replicas)", s.name),
            _ => s.name.clone(),
        })
        .collect();
    ctx.warn(
        format!("volumes.{key}"),
        format!(
            "mounted by {}: its ReadWriteOnce claim attaches to one node at a time, so pods \
             scheduled on another node cannot start; use a ReadWriteMany storage class, or keep \
             these pods on one node",
            who.join(", ")
        ),
    );
}

/// The pod volumes and mounts of a service's `volumes`, `tmpfs` and `shm_size`.
pub(crate) fn mounts(ctx: &mut Ctx<'_>, s: &Service) -> Mounts {
    let mut out = Mounts::default();
    let (mut scratch, mut tmpfs) = (0usize, 0usize);
    for (i, v) in s.volumes.iter().enumerate() {
        let place = format!("services.{}.volumes[{i}]", s.name);
        match (v.kind, v.source.as_deref()) {
            (VolumeKind::Volume, Some(key)) => named(ctx, s, v, key, &mut out),
            (VolumeKind::Volume, None) => {
                scratch += 1;
                out.add(
                    empty_dir(&format!("scratch-{scratch}"), None, None),
                    mount(&format!("scratch-{scratch}"), &v.target),
                );
            }
            (VolumeKind::Tmpfs, _) => {
                tmpfs += 1;
                let size = v.tmpfs.as_ref().and_then(|t| t.size);
                out.add(
                    empty_dir(&format!("tmpfs-{tmpfs}"), Some("Memory"), size),
                    mount(&format!("tmpfs-{tmpfs}"), &v.target),
                );
            }
            (VolumeKind::Bind, source) => {
                let source = shown_path(ctx, source.unwrap_or_default());
                ctx.warn(
                    place,
                    format!(
                        "the bind mount of {source} at {} is left out: a cluster node has no such \
                         path; build the files into the image, or use `configs:` for a file and a \
                         named volume for data",
                        v.target
                    ),
                );
            }
            (kind, _) => ctx.warn(
                place,
                format!("a volume of type {kind} is left out: it has no Kubernetes equivalent"),
            ),
        }
    }
    for (target, size) in tmpfs_entries(s) {
        tmpfs += 1;
        out.add(
            empty_dir(&format!("tmpfs-{tmpfs}"), Some("Memory"), size),
            mount(&format!("tmpfs-{tmpfs}"), &target),
        );
    }
    let named = s
        .volumes
        .iter()
        .any(|v| v.kind == VolumeKind::Volume && v.source.is_some());
    if s.settings.kube.storage.is_some() && !named {
        ctx.warn(
            format!("services.{}.x-berth.kube.storage", s.name),
            "the service mounts no named volume for it to size",
        );
    }
    if let Some(size) = s.other.get("shm_size").and_then(json_size) {
        out.add(
            empty_dir("dshm", Some("Memory"), Some(size)),
            mount("dshm", "/dev/shm"),
        );
    }
    out
}

fn named(ctx: &mut Ctx<'_>, s: &Service, v: &ServiceVolumeConfig, key: &str, out: &mut Mounts) {
    let template = is_template(ctx, s, key);
    let claim_name = if is_external(ctx, key) {
        external_claim(ctx, key)
    } else {
        ctx.volumes.get(key)
    };
    let volume_name = dns_label(&claim_name, 63, false);
    let mut m = mount(&volume_name, &v.target);
    m.read_only = v.read_only.then_some(true);
    m.sub_path = v.volume.as_ref().and_then(|o| o.subpath.clone());
    if template {
        if !out
            .claim_templates
            .iter()
            .any(|c| c.metadata.name.as_deref() == Some(&volume_name))
        {
            out.claim_templates
                .push(claim(ctx, key, &volume_name, false));
        }
        out.mount(m);
    } else {
        let volume = Volume {
            name: volume_name,
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name,
                read_only: None,
            }),
            ..Volume::default()
        };
        out.add(volume, m);
    }
}

/// The claim an external volume stands for: its name, which must exist.
fn external_claim(ctx: &mut Ctx<'_>, key: &str) -> String {
    let name = ctx
        .project
        .volumes
        .get(key)
        .and_then(|v| v.get("name"))
        .and_then(Json::as_str)
        .unwrap_or(key)
        .to_string();
    if is_dns_subdomain(&name) {
        name
    } else {
        let fixed = dns_label(&name, 63, false);
        ctx.warn(
            format!("volumes.{key}"),
            format!("external volume {name:?} is not a valid claim name; the pods use the claim {fixed}, which must exist"),
        );
        fixed
    }
}

fn empty_dir(name: &str, medium: Option<&str>, size: Option<ByteSize>) -> Volume {
    Volume {
        name: name.to_string(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: medium.map(str::to_string),
            size_limit: size.map(|s| units::bytes(s.0)),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// `tmpfs: ["/run", "/tmp:size=64m,mode=1777"]`: targets and sizes.
fn tmpfs_entries(s: &Service) -> Vec<(String, Option<ByteSize>)> {
    let Some(list) = s.other.get("tmpfs").and_then(Json::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(Json::as_str)
        .map(|entry| {
            let (target, options) = entry.split_once(':').unwrap_or((entry, ""));
            let size = options
                .split(',')
                .find_map(|o| o.strip_prefix("size="))
                .and_then(|v| ByteSize::parse(v).ok());
            (target.to_string(), size)
        })
        .collect()
}

fn json_size(v: &Json) -> Option<ByteSize> {
    match v {
        Json::Number(n) => n.as_u64().map(ByteSize),
        Json::String(s) => ByteSize::parse(s).ok(),
        _ => None,
    }
}

/// A host path as the user wrote it: relative to the project directory
/// when it is inside it.
pub(crate) fn shown_path(ctx: &Ctx<'_>, path: &str) -> String {
    Path::new(path)
        .strip_prefix(&ctx.project.directory)
        .ok()
        .filter(|rel| !rel.as_os_str().is_empty())
        .map_or_else(|| path.to_string(), |rel| format!("./{}", rel.display()))
}
