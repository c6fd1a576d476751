//! The merged canonical tree to the [`Project`] model.
//!
//! Binds typed fields, reads `env_file`s and `label_file`s, fills defaults
//! and implicit dependencies, applies profiles, then checks what only the
//! whole project can tell (unknown dependencies, cycles, port conflicts,
//! routes to unknown services, fields the native runtime cannot honour).
//! Every error is collected; the model is returned only when there is none.
//!
//! # Layout
//! - `mod.rs`: binding and defaults.
//! - `settings.rs`: `x-berth` raw shapes to typed settings.
//! - `validate.rs`: project-wide checks.
//! - `native.rs`: what the native runtime cannot honour.

mod backup;
mod dashboard;
mod edge;
mod fields;
mod native;
mod settings;
mod validate;

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_json::Value as Json;

use crate::context::{Ctx, Env};
use crate::diag::{Diagnostic, DiagnosticKind, Span};
use crate::model::{Condition, Dependency, Project, Service, TYPED_SERVICE_KEYS};
use crate::schema::display_path;
use crate::yaml::{DeError, Node, from_node};

/// Defaults that must exist before relative paths are resolved
/// (`build.context` defaults to the project directory).
pub(crate) fn fill_tree_defaults(tree: &mut Node) {
    let Some(services) = tree.get_mut("services").and_then(Node::as_map_mut) else {
        return;
    };
    for entry in services.values_mut() {
        let Some(build) = entry.value.get_mut("build") else {
            continue;
        };
        let span = build.span;
        let Some(map) = build.as_map_mut() else {
            continue;
        };
        if !map.contains_key("context") {
            map.insert(
                "context".into(),
                crate::yaml::Entry {
                    key_span: span,
                    value: Node::str(".", span),
                },
            );
            map.move_index(map.len() - 1, 0);
        }
        if !map.contains_key("dockerfile") && !map.contains_key("dockerfile_inline") {
            let at = map.get_index_of("context").map_or(0, |i| i + 1);
            map.insert(
                "dockerfile".into(),
                crate::yaml::Entry {
                    key_span: span,
                    value: Node::str("Dockerfile", span),
                },
            );
            map.move_index(map.len() - 1, at);
        }
    }
}

pub(crate) fn normalize(
    ctx: &mut Ctx<'_>,
    tree: &Node,
    name: String,
    directory: PathBuf,
    files: Vec<PathBuf>,
    env: &Env,
) -> Option<Project> {
    let errors_before = ctx.sink.errors.len();
    let mut project = Project {
        name: name.clone(),
        directory: directory.clone(),
        files,
        services: IndexMap::new(),
        networks: resources(tree, "networks", &name, ctx.options.normalize),
        volumes: resources(tree, "volumes", &name, ctx.options.normalize),
        secrets: resources(tree, "secrets", &name, ctx.options.normalize),
        configs: resources(tree, "configs", &name, ctx.options.normalize),
        models: json_section(tree, "models"),
        extensions: tree
            .as_map()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| k.starts_with("x-"))
                    .map(|(k, e)| (k.clone(), e.value.to_json()))
                    .collect()
            })
            .unwrap_or_default(),
        settings: Default::default(),
        disabled_services: IndexMap::new(),
        environment: env.vars.clone(),
    };
    for kind in ["networks", "volumes", "secrets", "configs"] {
        validate::external_resources(ctx, tree, kind);
    }
    let mut needs_default_network = false;
    if let Some(services) = tree.get("services").and_then(Node::as_map) {
        for (service_name, entry) in services {
            if let Some(service) = bind_service(ctx, service_name, &entry.value, env, &directory) {
                if !ctx.options.normalize {
                    project.services.insert(service_name.clone(), service);
                    continue;
                }
                if service.network_mode.is_none() && !service.other.contains_key("networks") {
                    needs_default_network = true;
                }
                project.services.insert(service_name.clone(), service);
            }
        }
    }
    if needs_default_network && ctx.options.normalize {
        for service in project.services.values_mut() {
            if service.network_mode.is_none() && !service.other.contains_key("networks") {
                service
                    .other
                    .insert("networks".into(), serde_json::json!({"default": null}));
            }
        }
        if !project.networks.contains_key("default") {
            project.networks.insert(
                "default".into(),
                serde_json::json!({"name": format!("{name}_default")}),
            );
            project.networks.sort_keys();
        }
    }
    project.settings = settings::project(ctx, tree.get("x-berth"), &directory);
    profiles(ctx, &mut project, tree, env);
    if ctx.options.consistency {
        validate::project(ctx, &project, tree);
        if ctx.options.native_checks {
            native::check(ctx, &project, tree);
        }
    }
    (ctx.sink.errors.len() == errors_before).then_some(project)
}

/// A top-level resource section with names filled in: `name:` as given,
/// the key itself for external resources, `<project>_<key>` otherwise.
fn resources(tree: &Node, kind: &str, project: &str, fill_names: bool) -> IndexMap<String, Json> {
    let mut out = json_section(tree, kind);
    if !fill_names {
        for value in out.values_mut() {
            if value.is_null() {
                *value = Json::Object(serde_json::Map::new());
            }
        }
        out.sort_keys();
        return out;
    }
    for (key, value) in out.iter_mut() {
        if value.is_null() {
            *value = Json::Object(serde_json::Map::new());
        }
        let Some(obj) = value.as_object_mut() else {
            continue;
        };
        let external = obj.get("external").and_then(Json::as_bool).unwrap_or(false);
        if !obj.contains_key("name") && matches!(kind, "networks" | "volumes") {
            let name = if external {
                key.clone()
            } else {
                format!("{project}_{key}")
            };
            let mut named = serde_json::Map::new();
            named.insert("name".into(), Json::String(name));
            named.extend(std::mem::take(obj));
            *obj = named;
        }
    }
    out.sort_keys();
    out
}

fn json_section(tree: &Node, kind: &str) -> IndexMap<String, Json> {
    tree.get(kind)
        .and_then(Node::as_map)
        .map(|m| {
            m.iter()
                .map(|(k, e)| (k.clone(), e.value.to_json()))
                .collect()
        })
        .unwrap_or_default()
}

/// Reports a binding error at its place.
pub(crate) fn bind_error(ctx: &mut Ctx<'_>, base_path: &[&str], e: DeError, fallback: Span) {
    let mut path: Vec<String> = base_path.iter().map(|s| s.to_string()).collect();
    path.extend(e.path.iter().cloned());
    let message = e.message.replace("unknown field", "unknown key");
    ctx.sink.push(Diagnostic::error(
        DiagnosticKind::InvalidValue,
        e.span.unwrap_or(fallback),
        format!("{}: {message}", display_path(&path)),
    ));
}

fn bind_service(
    ctx: &mut Ctx<'_>,
    name: &str,
    node: &Node,
    env: &Env,
    dir: &Path,
) -> Option<Service> {
    let map = node.as_map()?;
    let other: IndexMap<String, Json> = map
        .iter()
        .filter(|(k, _)| !TYPED_SERVICE_KEYS.contains(&k.as_str()))
        .map(|(k, e)| (k.clone(), e.value.to_json()))
        .collect();
    let mut other = other;
    if !fields::check(ctx, name, node) {
        return None;
    }
    // `Service` ignores the keys it does not type; they are in `other`.
    let mut service: Service = match from_node(node) {
        Ok(s) => s,
        Err(e) => {
            bind_error(ctx, &["services", name], e, node.span);
            return None;
        }
    };
    service.name = name.to_string();
    service.confinement = crate::confine::read(ctx, name, node);
    if let Some(x) = node.get("x-berth") {
        service.settings = settings::service(ctx, name, x);
    }
    resolve_environment(ctx, &mut service, node, env, dir);
    read_label_files(ctx, &mut service, &mut other, node);
    resolve_build_args(&mut other, env);
    if ctx.options.normalize {
        inherit_hook_images(&service, &mut other);
        implicit_dependencies(&mut service, &other);
    }
    if let Some(hc) = &mut service.healthcheck
        && hc.disable
    {
        hc.test = crate::model::HealthTest::Disabled;
    }
    if let (Some(scale), Some(replicas)) = (
        service.scale,
        service.deploy.as_ref().and_then(|d| d.replicas),
    ) && scale != replicas
    {
        ctx.sink.push(
            Diagnostic::error(
                DiagnosticKind::Conflict,
                node.span_at(&["scale"]),
                format!(
                    "services.{name}: scale ({scale}) and deploy.replicas ({replicas}) disagree"
                ),
            )
            .with_help("keep only one of them"),
        );
    }
    service.other = other;
    Some(service)
}

/// `env_file` contents overlaid with `environment`; variables declared
/// without a value take it from the shell/.env environment.
fn resolve_environment(
    ctx: &mut Ctx<'_>,
    service: &mut Service,
    node: &Node,
    env: &Env,
    dir: &Path,
) {
    let mut from_files: IndexMap<String, String> = IndexMap::new();
    for (i, file) in service.env_file.iter().enumerate() {
        let path = crate::context::absolute(dir, Path::new(&file.path));
        let span = node.span_at(&["env_file", &i.to_string(), "path"]);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !file.required => continue,
            Err(e) => {
                ctx.sink.push(
                    Diagnostic::error(
                        DiagnosticKind::Io,
                        span,
                        format!(
                            "services.{}.env_file: cannot read {}: {}",
                            service.name,
                            path.display(),
                            crate::context::io_reason(&e)
                        ),
                    )
                    .with_help("create the file, or mark it `required: false`"),
                );
                continue;
            }
        };
        let id = ctx.sources.add(&path, text.as_str());
        let explicit = &service.environment;
        let lookup = |k: &str| env.get(k).or_else(|| explicit.get(k).cloned().flatten());
        let result = if file.format.as_deref() == Some("raw") {
            crate::dotenv::parse_raw_with_lookup(&text, &lookup).map(|m| from_files.extend(m))
        } else {
            crate::dotenv::parse_into(&text, &lookup, &mut from_files)
        };
        if let Err(e) = result {
            ctx.env_file_error(&path, id, &e);
        }
    }
    let explicit = std::mem::take(&mut service.environment);
    let mut merged: IndexMap<String, Option<String>> =
        from_files.into_iter().map(|(k, v)| (k, Some(v))).collect();
    for (k, v) in explicit {
        let value = match v {
            Some(v) => Some(v),
            None => env.get(&k).or_else(|| merged.get(&k).cloned().flatten()),
        };
        merged.insert(k, value);
    }
    if !service.env_file.is_empty() {
        merged.sort_keys();
    }
    service.environment = merged;
}

/// `label_file` contents under explicit `labels`.
fn read_label_files(
    ctx: &mut Ctx<'_>,
    service: &mut Service,
    other: &mut IndexMap<String, Json>,
    node: &Node,
) {
    let Some(files) = other.get("label_file").and_then(Json::as_array).cloned() else {
        return;
    };
    let mut labels: IndexMap<String, String> = IndexMap::new();
    for (i, f) in files.iter().enumerate() {
        let Some(path) = f.as_str() else { continue };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                if let Err(e) = crate::dotenv::parse_into(&text, &|_| None, &mut labels) {
                    ctx.sink.error(
                        DiagnosticKind::InvalidEnvFile,
                        node.span_at(&["label_file", &i.to_string()]),
                        format!("{path}: {e}"),
                    );
                }
            }
            Err(e) => ctx.sink.error(
                DiagnosticKind::Io,
                node.span_at(&["label_file", &i.to_string()]),
                format!(
                    "services.{}.label_file: cannot read {path}: {}",
                    service.name,
                    crate::context::io_reason(&e)
                ),
            ),
        }
    }
    for (k, v) in std::mem::take(&mut service.labels) {
        labels.insert(k, v);
    }
    labels.sort_keys();
    service.labels = labels;
}

/// `build.args` declared without a value take it from the environment, and
/// are dropped when it has none (as the reference does).
fn resolve_build_args(other: &mut IndexMap<String, Json>, env: &Env) {
    let Some(args) = other
        .get_mut("build")
        .and_then(|b| b.get_mut("args"))
        .and_then(Json::as_object_mut)
    else {
        return;
    };
    let keys: Vec<String> = args.keys().cloned().collect();
    for k in keys {
        if args.get(&k).is_some_and(Json::is_null) {
            match env.get(&k) {
                Some(v) => {
                    args.insert(k, Json::String(v));
                }
                None => {
                    args.remove(&k);
                }
            }
        }
    }
}

/// Lifecycle hooks without an image run in the service's image.
fn inherit_hook_images(service: &Service, other: &mut IndexMap<String, Json>) {
    let Some(image) = &service.image else {
        return;
    };
    for hook in ["pre_start", "post_start", "pre_stop"] {
        if let Some(items) = other.get_mut(hook).and_then(Json::as_array_mut) {
            for item in items {
                if let Some(obj) = item.as_object_mut() {
                    obj.entry("image")
                        .or_insert_with(|| Json::String(image.clone()));
                }
            }
        }
    }
}

/// `links`, `volumes_from` and `service:` namespaces are dependencies too.
fn implicit_dependencies(service: &mut Service, other: &IndexMap<String, Json>) {
    let mut add = |name: &str, restart: bool| {
        if !name.is_empty() && name != service.name {
            service
                .depends_on
                .entry(name.to_string())
                .or_insert(Dependency {
                    condition: Condition::ServiceStarted,
                    required: true,
                    restart,
                });
        }
    };
    let namespaced = |v: Option<&Json>| {
        v.and_then(Json::as_str)
            .and_then(|s| s.strip_prefix("service:"))
            .map(str::to_string)
    };
    for key in ["ipc", "cgroup", "uts", "pid"] {
        if let Some(s) = namespaced(other.get(key)) {
            add(&s, true);
        }
    }
    if let Some(s) = service
        .network_mode
        .as_deref()
        .and_then(|m| m.strip_prefix("service:"))
    {
        let s = s.to_string();
        add(&s, true);
    }
    if let Some(items) = other.get("volumes_from").and_then(Json::as_array) {
        for item in items.iter().filter_map(Json::as_str) {
            if item.starts_with("container:") {
                continue;
            }
            let name = item.split(':').next().unwrap_or(item);
            add(name, false);
        }
    }
    if let Some(items) = other.get("links").and_then(Json::as_array) {
        for item in items.iter().filter_map(Json::as_str) {
            let name = item.split(':').next().unwrap_or(item);
            add(name, true);
        }
    }
}

/// Moves services whose profiles are not enabled to `disabled_services`.
fn profiles(ctx: &mut Ctx<'_>, project: &mut Project, tree: &Node, env: &Env) {
    let mut enabled: Vec<String> = ctx.options.profiles.clone();
    if enabled.is_empty()
        && let Some(list) = env.get("COMPOSE_PROFILES")
    {
        enabled.extend(
            list.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        );
    }
    let all = enabled.iter().any(|p| p == "*");
    // Services named on the command line, and what they depend on, are
    // enabled whatever their profiles.
    let mut wanted: Vec<String> = Vec::new();
    for name in &ctx.options.services {
        if !project.services.contains_key(name) {
            let known: Vec<String> = project.services.keys().cloned().collect();
            let mut d = Diagnostic::error(
                DiagnosticKind::UnknownService,
                Span::NONE,
                format!("no such service: {name}"),
            );
            if let Some(near) = crate::schema::closest(name, &known) {
                d = d.with_help(format!("did you mean `{near}`?"));
            }
            ctx.sink.push(d);
            continue;
        }
        let mut stack = vec![name.clone()];
        while let Some(s) = stack.pop() {
            if wanted.contains(&s) {
                continue;
            }
            if let Some(svc) = project.services.get(&s) {
                stack.extend(svc.depends_on.keys().cloned());
            }
            wanted.push(s);
        }
    }
    let active = |s: &Service| {
        s.profiles.is_empty()
            || all
            || s.profiles.iter().any(|p| enabled.contains(p))
            || wanted.contains(&s.name)
    };
    let names: Vec<String> = project.services.keys().cloned().collect();
    for name in names {
        if project.services.get(&name).is_some_and(|s| !active(s))
            && let Some(s) = project.services.shift_remove(&name)
        {
            project.disabled_services.insert(name, s);
        }
    }
    for (name, service) in &project.services {
        for (dep, d) in &service.depends_on {
            if !d.required {
                continue;
            }
            if !ctx.options.consistency {
                continue;
            }
            if let Some(disabled) = project.disabled_services.get(dep) {
                ctx.sink.push(
                    Diagnostic::error(
                        DiagnosticKind::UnknownService,
                        tree.key_span_at(&["services", name, "depends_on"], dep)
                            .unwrap_or_else(|| tree.span_at(&["services", name])),
                        format!(
                            "service {name} depends on {dep}, which is disabled by its profiles ({})",
                            disabled.profiles.join(", ")
                        ),
                    )
                    .with_help(format!("enable it with --profile {}", disabled.profiles[0])),
                );
            }
        }
    }
}

/// `:8080` -> `0.0.0.0:8080`, `8080` -> `127.0.0.1:8080`; None when it does
/// not parse as a socket address.
pub(crate) fn normalize_listen(address: &str) -> Option<String> {
    let candidate = if let Some(port) = address.strip_prefix(':') {
        format!("0.0.0.0:{port}")
    } else if address.parse::<u16>().is_ok() {
        format!("127.0.0.1:{address}")
    } else if let Some(port) = address.strip_prefix("localhost:") {
        format!("127.0.0.1:{port}")
    } else {
        address.to_string()
    };
    candidate
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| a.to_string())
}
