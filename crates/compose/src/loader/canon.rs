//! Short forms to long forms, on the tree, file by file.
//!
//! After this pass every attribute that Compose lets people write two ways
//! has one shape: `depends_on` is a mapping, ports and volumes are long-form
//! mappings, commands are argv lists, `environment` and labels are mappings,
//! and so on. Merging files and binding to the model then only deal with one
//! form. New nodes keep the span of the short form they came from.

use crate::diag::{Diagnostic, DiagnosticKind, Sink, Span};
use crate::schema::display_path;
use crate::yaml::{Entry, Map, Node, Tag, Value};

/// Canonicalizes a whole file (already validated against the schema).
pub(crate) fn canonicalize(doc: &mut Node, sink: &mut Sink) {
    if let Some(services) = doc.get_mut("services").and_then(Node::as_map_mut) {
        for (name, entry) in services.iter_mut() {
            if let Some(service) = entry.value.as_map_mut() {
                service_fields(name, service, sink);
            }
        }
    }
    for kind in ["volumes", "networks", "secrets", "configs"] {
        if let Some(resources) = doc.get_mut(kind).and_then(Node::as_map_mut) {
            for (name, entry) in resources.iter_mut() {
                maybe_external(&[kind, name.as_str()], &mut entry.value, sink);
                if let Some(map) = entry.value.as_map_mut() {
                    if let Some(opts) = map.get_mut("driver_opts") {
                        list_to_map(&mut opts.value.value, Stringify::Keep);
                    }
                    if let Some(labels) = map.get_mut("labels") {
                        list_to_map(&mut labels.value.value, Stringify::NullIsEmpty);
                    }
                }
            }
        }
    }
    if let Some(include) = doc.get_mut("include")
        && let Value::Seq(items) = &mut include.value
    {
        for item in items {
            if let Value::Str(s) = &item.value {
                let span = item.span;
                let path = Node::new(Value::Seq(vec![Node::str(s.clone(), span)]), span);
                item.value = Value::Map(map_of([("path", path)]));
            } else if let Some(path) = item.get_mut("path") {
                to_list(path);
            }
        }
    }
}

fn map_of<const N: usize>(entries: [(&str, Node); N]) -> Map {
    entries
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                Entry {
                    key_span: v.span,
                    value: v,
                },
            )
        })
        .collect()
}

fn service_fields(name: &str, service: &mut Map, sink: &mut Sink) {
    let path = |field: &str| vec!["services".to_string(), name.to_string(), field.to_string()];
    for (key, entry) in service.iter_mut() {
        let node = &mut entry.value;
        if node.tag == Tag::Reset {
            continue;
        }
        match key.as_str() {
            "build" => build(node),
            "extends" => {
                if let Value::Str(s) = &node.value {
                    let service = Node::str(s.clone(), node.span);
                    node.value = Value::Map(map_of([("service", service)]));
                }
            }
            "command" | "entrypoint" => argv(&path(key), node, sink),
            "healthcheck" => {
                if let Some(test) = node.get_mut("test")
                    && let Value::Str(s) = &test.value
                {
                    let span = test.span;
                    test.value = Value::Seq(vec![
                        Node::str("CMD-SHELL", span),
                        Node::str(s.clone(), span),
                    ]);
                }
            }
            "environment" => {
                check_environment_keys(&path(key), node, sink);
                list_to_map(&mut node.value, Stringify::Keep);
            }
            "labels" | "annotations" => list_to_map(&mut node.value, Stringify::NullIsEmpty),
            "sysctls" => list_to_map(&mut node.value, Stringify::Keep),
            "deploy" => {
                if let Some(labels) = node.get_mut("labels") {
                    list_to_map(&mut labels.value, Stringify::NullIsEmpty);
                }
            }
            "extra_hosts" => extra_hosts(&mut node.value),
            "dns" | "dns_search" | "dns_opt" | "tmpfs" | "label_file" => to_list(node),
            "env_file" => env_file(node),
            "depends_on" => depends_on(node),
            "networks" => networks(node),
            "ports" => ports(&path(key), node, sink),
            "expose" => {
                if let Value::Seq(items) = &mut node.value {
                    for item in items {
                        if let Some(s) = item.scalar_string() {
                            item.value = Value::Str(s);
                        }
                    }
                }
            }
            "volumes" => volumes(&path(key), node, sink),
            "secrets" | "configs" => {
                file_mounts(&mut node.value);
                octal_modes(&mut node.value);
            }
            "devices" => devices(node),
            _ => {}
        }
    }
}

/// `build: DIR` to `{context: DIR}`, and its lists to maps.
fn build(node: &mut Node) {
    if let Value::Str(s) = &node.value {
        let context = Node::str(s.clone(), node.span);
        node.value = Value::Map(map_of([("context", context)]));
    }
    if let Some(build) = node.as_map_mut() {
        for field in ["args", "labels", "additional_contexts"] {
            if let Some(n) = build.get_mut(field) {
                list_to_map(&mut n.value.value, Stringify::Keep);
            }
        }
        if let Some(n) = build.get_mut("extra_hosts") {
            extra_hosts(&mut n.value.value);
        }
        if let Some(n) = build.get_mut("secrets") {
            file_mounts(&mut n.value.value);
            octal_modes(&mut n.value.value);
        }
    }
}

/// A string `command`/`entrypoint` split as a shell would.
fn argv(path: &[String], node: &mut Node, sink: &mut Sink) {
    if let Value::Str(s) = &node.value {
        match shlex::split(s) {
            Some(argv) => {
                let span = node.span;
                node.value = Value::Seq(argv.into_iter().map(|a| Node::str(a, span)).collect());
            }
            None => sink.push(
                Diagnostic::error(
                    DiagnosticKind::InvalidValue,
                    node.span,
                    format!("{}: unbalanced quotes in {s:?}", display_path(path)),
                )
                .with_help("close the quote, or write the command as a list"),
            ),
        }
    }
}

/// `env_file` entries in long form.
fn env_file(node: &mut Node) {
    to_list(node);
    if let Value::Seq(items) = &mut node.value {
        for item in items {
            if let Value::Str(s) = &item.value {
                let span = item.span;
                item.value = Value::Map(map_of([
                    ("path", Node::str(s.clone(), span)),
                    ("required", Node::new(Value::Bool(true), span)),
                ]));
            }
        }
    }
}

/// A `depends_on` list to its long form.
fn depends_on(node: &mut Node) {
    if let Value::Seq(items) = &node.value {
        let mut map = Map::default();
        for item in items {
            if let Some(s) = item.scalar_string() {
                let span = item.span;
                let long = map_of([
                    ("condition", Node::str("service_started", span)),
                    ("required", Node::new(Value::Bool(true), span)),
                ]);
                map.insert(
                    s,
                    Entry {
                        key_span: span,
                        value: Node::new(Value::Map(long), span),
                    },
                );
            }
        }
        node.value = Value::Map(map);
    }
}

/// A `networks` list to a map.
fn networks(node: &mut Node) {
    if let Value::Seq(items) = &node.value {
        let map = items
            .iter()
            .filter_map(|i| {
                Some((
                    i.scalar_string()?,
                    Entry {
                        key_span: i.span,
                        value: Node::new(Value::Null, i.span),
                    },
                ))
            })
            .collect();
        node.value = Value::Map(map);
    }
}

/// How scalar values of a list-or-dict attribute become strings.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stringify {
    /// Numbers and booleans become strings; null stays null.
    Keep,
    /// Like `Keep`, and null becomes "" (labels).
    NullIsEmpty,
}

/// `["A=1", "B"]` -> `{A: "1", B: null}`; mapping values stringified.
fn list_to_map(value: &mut Value, how: Stringify) {
    match value {
        Value::Seq(items) => {
            let mut map = Map::default();
            for item in items.iter() {
                let Some(s) = item.scalar_string() else {
                    continue;
                };
                let (k, v) = match s.split_once('=') {
                    Some((k, v)) => (k.to_string(), Node::str(v, item.span)),
                    None if how == Stringify::NullIsEmpty => (s, Node::str("", item.span)),
                    None => (s, Node::new(Value::Null, item.span)),
                };
                map.insert(
                    k,
                    Entry {
                        key_span: item.span,
                        value: v,
                    },
                );
            }
            *value = Value::Map(map);
        }
        Value::Map(map) => {
            for entry in map.values_mut() {
                let n = &mut entry.value;
                match n.scalar_string() {
                    Some(s) => n.value = Value::Str(s),
                    None if n.is_null() && how == Stringify::NullIsEmpty => {
                        n.value = Value::Str(String::new());
                    }
                    None => {}
                }
            }
        }
        _ => {}
    }
}

/// The reference rejects `- "DEBUG =1"` in list-form environments (a key with
/// a trailing space never matches what the program looks up).
fn check_environment_keys(path: &[String], node: &Node, sink: &mut Sink) {
    if let Value::Seq(items) = &node.value {
        for item in items {
            if let Some(s) = item.as_str() {
                let key = s.split_once('=').map_or(s, |(k, _)| k);
                if key != key.trim_end() {
                    sink.push(
                        Diagnostic::error(
                            DiagnosticKind::InvalidValue,
                            item.span,
                            format!(
                                "{}: environment variable {key} is declared with a trailing space",
                                display_path(path)
                            ),
                        )
                        .with_help(format!("write `{}=…` without the space", key.trim_end())),
                    );
                }
            }
        }
    }
}

/// `extra_hosts`: a list of `host=ip` strings (`host:ip` accepted on input,
/// a mapping value may be a list of addresses).
fn extra_hosts(value: &mut Value) {
    let span_of = |n: &Node| n.span;
    match value {
        Value::Map(map) => {
            let mut out = Vec::new();
            for (host, entry) in map.iter() {
                match &entry.value.value {
                    Value::Seq(ips) => {
                        for ip in ips {
                            if let Some(ip) = ip.scalar_string() {
                                out.push(Node::str(format!("{host}={ip}"), span_of(&entry.value)));
                            }
                        }
                    }
                    _ => {
                        let ip = entry.value.scalar_string().unwrap_or_default();
                        out.push(Node::str(format!("{host}={ip}"), span_of(&entry.value)));
                    }
                }
            }
            *value = Value::Seq(out);
        }
        Value::Seq(items) => {
            for item in items {
                if let Some(s) = item.as_str()
                    && !s.contains('=')
                    && let Some((host, ip)) = s.split_once(':')
                {
                    item.value = Value::Str(format!("{host}={ip}"));
                }
            }
        }
        _ => {}
    }
}

fn to_list(node: &mut Node) {
    if let Value::Str(s) = &node.value {
        node.value = Value::Seq(vec![Node::str(s.clone(), node.span)]);
    }
}

/// `secrets`/`configs` entries: `name` -> `{source: name}`.
fn file_mounts(value: &mut Value) {
    if let Value::Seq(items) = value {
        for item in items {
            if let Value::Str(s) = &item.value {
                let span = item.span;
                item.value = Value::Map(map_of([("source", Node::str(s.clone(), span))]));
            }
        }
    }
}

/// File modes print in octal, as they are meant (`mode: 0440` -> "0440").
fn octal_modes(value: &mut Value) {
    if let Value::Seq(items) = value {
        for item in items {
            if let Some(mode) = item.get_mut("mode")
                && let Value::Int(m) = mode.value
            {
                mode.value = Value::Str(format!("0{m:o}"));
            }
        }
    }
}

/// `devices`: `"/dev/a:/dev/b:rwm"` -> `{source, target, permissions}`.
fn devices(node: &mut Node) {
    if let Value::Seq(items) = &mut node.value {
        for item in items {
            if let Value::Str(s) = &item.value {
                let span = item.span;
                let parts: Vec<&str> = s.split(':').collect();
                let (source, target, permissions) = match parts.as_slice() {
                    [src] => (*src, *src, "rwm"),
                    [src, dst] => (*src, *dst, "rwm"),
                    [src, dst, perm, ..] => (*src, *dst, *perm),
                    [] => continue,
                };
                item.value = Value::Map(map_of([
                    ("source", Node::str(source, span)),
                    ("target", Node::str(target, span)),
                    ("permissions", Node::str(permissions, span)),
                ]));
            }
        }
    }
}

fn ports(path: &[String], node: &mut Node, sink: &mut Sink) {
    let Value::Seq(items) = &mut node.value else {
        return;
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in std::mem::take(items).into_iter().enumerate() {
        let spec = match &item.value {
            Value::Int(n) => n.to_string(),
            Value::Float(f) => crate::yaml::format_float(*f),
            Value::Str(s) => s.clone(),
            _ => {
                out.push(item);
                continue;
            }
        };
        match crate::ports::parse_port_spec(&spec) {
            Ok(configs) => {
                for config in configs {
                    match serde_json::to_value(&config) {
                        Ok(json) => out.push(Node::from_json(&json, item.span)),
                        Err(e) => {
                            sink.error(DiagnosticKind::InvalidValue, item.span, e.to_string())
                        }
                    }
                }
            }
            Err(e) => {
                let mut p = path.to_vec();
                p.push(i.to_string());
                sink.push(port_error(&p, item.span, &e.to_string()));
            }
        }
    }
    *items = out;
}

fn port_error(path: &[String], span: Span, message: &str) -> Diagnostic {
    Diagnostic::error(
        DiagnosticKind::InvalidValue,
        span,
        format!("{}: {message}", display_path(path)),
    )
    .with_help("ports are written [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL], e.g. \"127.0.0.1:8080:80\"")
}

fn volumes(path: &[String], node: &mut Node, sink: &mut Sink) {
    let Value::Seq(items) = &mut node.value else {
        return;
    };
    for (i, item) in items.iter_mut().enumerate() {
        let Value::Str(spec) = &item.value else {
            continue;
        };
        match crate::volumes::parse_volume_spec(spec) {
            Ok(config) => match serde_json::to_value(&config) {
                Ok(json) => *item = Node::from_json(&json, item.span),
                Err(e) => sink.error(DiagnosticKind::InvalidValue, item.span, e.to_string()),
            },
            Err(e) => {
                let mut p = path.to_vec();
                p.push(i.to_string());
                sink.push(
                    Diagnostic::error(
                        DiagnosticKind::InvalidValue,
                        item.span,
                        format!("{}: {e}", display_path(&p)),
                    )
                    .with_help(
                        "volumes are written [SOURCE:]TARGET[:MODE], e.g. \"./data:/data:ro\"",
                    ),
                );
            }
        }
    }
}

/// `external: {name: x}` (deprecated) -> `name: x` + `external: true`.
fn maybe_external(path: &[&str], node: &mut Node, sink: &mut Sink) {
    let Some(map) = node.as_map_mut() else {
        return;
    };
    let Some(external) = map.get_mut("external") else {
        return;
    };
    let Some(ext_name) = external.value.get("name").cloned() else {
        return;
    };
    let span = external.value.span;
    external.value = Node::new(Value::Bool(true), span);
    if map.contains_key("name") {
        sink.push(Diagnostic::error(
            DiagnosticKind::Conflict,
            span,
            format!(
                "{}: name and external.name conflict; only use name",
                display_path(path)
            ),
        ));
        return;
    }
    map.insert(
        "name".to_string(),
        Entry {
            key_span: span,
            value: ext_name,
        },
    );
    map.sort_by(|a, _, b, _| (a != "name").cmp(&(b != "name")));
}
