//! `secrets:` and `configs:`: files mounted into the container.
//!
//! A config becomes a ConfigMap holding its content, mounted at its
//! target. A secret is mounted from a Secret at `/run/secrets/<name>`
//! (or its target), but the Secret itself is not written: secret values do
//! not belong in manifests kept in git. A warning gives the `kubectl`
//! command that creates it from the same file or variable.

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth_compose::{Project, Service};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, KeyToPath, SecretVolumeSource, Volume, VolumeMount,
};
use serde_json::Value as Json;

use crate::context::{Ctx, component};
use crate::model::Object;
use crate::names::{dns_label, is_data_key, is_dns_subdomain};
use crate::storage::{Mounts, shown_path};

/// The largest ConfigMap the API server stores.
const CONFIG_MAP_LIMIT: usize = 1 << 20;

/// One `secrets`/`configs` entry of a service, long form.
struct FileMount {
    source: String,
    target: Option<String>,
    mode: Option<i32>,
    owner: bool,
}

fn entries(s: &Service, key: &str) -> Vec<FileMount> {
    let Some(list) = s.other.get(key).and_then(Json::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            Some(FileMount {
                source: e.get("source")?.as_str()?.to_string(),
                target: e.get("target").and_then(Json::as_str).map(str::to_string),
                mode: e.get("mode").and_then(octal_mode),
                owner: e.get("uid").is_some() || e.get("gid").is_some(),
            })
        })
        .collect()
}

/// `"0440"` (as the loader writes modes) or a number.
fn octal_mode(v: &Json) -> Option<i32> {
    match v {
        Json::String(s) => i32::from_str_radix(s.trim_start_matches("0o"), 8).ok(),
        Json::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
        _ => None,
    }
}

/// The key a Secret or ConfigMap holds the file under: the Compose name.
fn data_key(name: &str) -> String {
    if is_data_key(name) {
        name.to_string()
    } else {
        dns_label(name, 253, false)
    }
}

fn resource<'p>(project: &'p Project, kind: &str, key: &str) -> Option<&'p Json> {
    match kind {
        "secrets" => project.secrets.get(key),
        _ => project.configs.get(key),
    }
}

fn is_external(spec: Option<&Json>) -> bool {
    spec.and_then(|v| v.get("external"))
        .and_then(Json::as_bool)
        .unwrap_or(false)
}

/// The name of the Secret or ConfigMap a top-level entry stands for.
fn object_name(ctx: &Ctx<'_>, kind: &str, key: &str) -> String {
    let spec = resource(ctx.project, kind, key);
    if is_external(spec) {
        let name = spec
            .and_then(|v| v.get("name"))
            .and_then(Json::as_str)
            .unwrap_or(key);
        if is_dns_subdomain(name) {
            return name.to_string();
        }
        return dns_label(name, 253, false);
    }
    if kind == "secrets" {
        ctx.secrets.get(key)
    } else {
        ctx.configs.get(key)
    }
}

/// Mounts a service's secrets and configs.
pub(crate) fn mount(ctx: &mut Ctx<'_>, s: &Service, mounts: &mut Mounts) {
    for (kind, default_dir) in [("secrets", "/run/secrets"), ("configs", "")] {
        for (i, entry) in entries(s, kind).into_iter().enumerate() {
            let place = format!("services.{}.{kind}[{i}]", s.name);
            if entry.owner {
                ctx.warn(
                    &place,
                    "uid and gid are left out: a mounted file belongs to root (set fsGroup by hand if the program needs it)",
                );
            }
            let name = object_name(ctx, kind, &entry.source);
            let key = data_key(&entry.source);
            let target = match entry.target.as_deref() {
                Some(t) if t.starts_with('/') => t.to_string(),
                Some(t) => format!("{default_dir}/{t}"),
                None => format!("{default_dir}/{}", entry.source),
            };
            let items = Some(vec![KeyToPath {
                key: key.clone(),
                path: key.clone(),
                mode: entry.mode,
                ..KeyToPath::default()
            }]);
            let volume = if kind == "secrets" {
                Volume {
                    name: dns_label(&format!("secret-{name}"), 63, false),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some(name),
                        items,
                        ..SecretVolumeSource::default()
                    }),
                    ..Volume::default()
                }
            } else {
                Volume {
                    name: dns_label(&format!("config-{name}"), 63, false),
                    config_map: Some(ConfigMapVolumeSource {
                        name,
                        items,
                        ..ConfigMapVolumeSource::default()
                    }),
                    ..Volume::default()
                }
            };
            let m = VolumeMount {
                name: volume.name.clone(),
                mount_path: target,
                sub_path: Some(key),
                read_only: Some(true),
                ..VolumeMount::default()
            };
            mounts.add(volume, m);
        }
    }
}

/// The top-level entries of a kind that some service mounts, in file order.
fn used<'p>(project: &'p Project, kind: &str) -> Vec<(&'p String, &'p Json)> {
    let all = match kind {
        "secrets" => &project.secrets,
        _ => &project.configs,
    };
    all.iter()
        .filter(|(key, _)| {
            project
                .services
                .values()
                .any(|s| entries(s, kind).iter().any(|e| &e.source == *key))
        })
        .collect()
}

/// The files the `configs` used by the services are read from: the
/// caller reads them into [`crate::Options::files`].
pub fn files_to_read(project: &Project) -> Vec<PathBuf> {
    used(project, "configs")
        .into_iter()
        .filter(|(_, spec)| !is_external(Some(spec)))
        .filter_map(|(_, spec)| spec.get("file").and_then(Json::as_str).map(PathBuf::from))
        .collect()
}

/// A ConfigMap per config used, and for each secret used, a warning with
/// the command that creates it.
pub(crate) fn objects(ctx: &mut Ctx<'_>) -> Vec<Object> {
    let mut out = Vec::new();
    for (key, spec) in used(ctx.project, "configs") {
        if is_external(Some(spec)) {
            let name = object_name(ctx, "configs", key);
            ctx.warn(
                format!("configs.{key}"),
                format!(
                    "external: the pods mount the key {} of the ConfigMap {name}, which must exist",
                    data_key(key)
                ),
            );
            continue;
        }
        if let Some(map) = config_map(ctx, key, spec) {
            out.push(Object::from(map));
        }
    }
    for (key, spec) in used(ctx.project, "secrets") {
        secret_warning(ctx, key, spec);
    }
    out
}

fn config_map(ctx: &mut Ctx<'_>, key: &str, spec: &Json) -> Option<ConfigMap> {
    let place = format!("configs.{key}");
    let content: Vec<u8> = if let Some(text) = spec.get("content").and_then(Json::as_str) {
        text.as_bytes().to_vec()
    } else if let Some(var) = spec.get("environment").and_then(Json::as_str) {
        match ctx.project.environment.get(var) {
            Some(v) => v.as_bytes().to_vec(),
            None => {
                ctx.warn(&place, format!("${var} is not set: the config is empty"));
                Vec::new()
            }
        }
    } else if let Some(file) = spec.get("file").and_then(Json::as_str) {
        if let Some(bytes) = ctx.options.files.get(&PathBuf::from(file)) {
            bytes.clone()
        } else {
            ctx.warn(
                &place,
                format!(
                    "{} was not read: the ConfigMap is left out",
                    shown_path(ctx, file)
                ),
            );
            return None;
        }
    } else {
        ctx.warn(
            &place,
            "has no content, file or environment: the ConfigMap is left out",
        );
        return None;
    };
    if content.len() > CONFIG_MAP_LIMIT {
        ctx.warn(&place, "is larger than 1 MiB, the most a ConfigMap holds: build the file into the image instead");
    }
    let name = ctx.configs.get(key);
    let data_key = data_key(key);
    let mut map = ConfigMap {
        metadata: ctx.meta(&name, &name, component::CONFIG),
        ..ConfigMap::default()
    };
    match String::from_utf8(content) {
        Ok(text) => map.data = Some(BTreeMap::from([(data_key, text)])),
        Err(e) => map.binary_data = Some(BTreeMap::from([(data_key, ByteString(e.into_bytes()))])),
    }
    Some(map)
}

fn secret_warning(ctx: &mut Ctx<'_>, key: &str, spec: &Json) {
    let name = object_name(ctx, "secrets", key);
    let data_key = data_key(key);
    let place = format!("secrets.{key}");
    let message = if is_external(Some(spec)) {
        format!(
            "external: the pods mount the key {data_key} of the Secret {name}, which must exist"
        )
    } else if let Some(file) = spec.get("file").and_then(Json::as_str) {
        format!(
            "its content is not written to the manifests; create the Secret before applying: \
             kubectl create secret generic {name} --from-file={data_key}={}",
            shown_path(ctx, file)
        )
    } else if let Some(var) = spec.get("environment").and_then(Json::as_str) {
        format!(
            "its content is not written to the manifests; create the Secret before applying: \
             kubectl create secret generic {name} --from-literal={data_key}=\"${var}\""
        )
    } else {
        format!(
            "has no file or environment; the pods mount the key {data_key} of the Secret {name}, which must exist"
        )
    };
    ctx.warn(place, message);
}
