//! Checks that need the whole project: dependencies, cycles, host ports,
//! proxy routes, exclusive attributes.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use serde_json::Value as Json;

use crate::context::Ctx;
use crate::diag::{Diagnostic, DiagnosticKind, Span};
use crate::model::{Condition, PortRange, Project, Protocol, RouteTarget, VolumeKind};
use crate::yaml::Node;

pub(crate) fn project(ctx: &mut Ctx<'_>, project: &Project, tree: &Node) {
    dependencies(ctx, project, tree);
    cycles(ctx, project, tree);
    for (name, service) in &project.services {
        let at = |field: &str| tree.span_at(&["services", name, field]);
        if service.network_mode.is_some() && service.other.contains_key("networks") {
            ctx.sink.push(Diagnostic::error(
                DiagnosticKind::Conflict,
                at("network_mode"),
                format!("service {name} declares mutually exclusive `network_mode` and `networks`"),
            ));
        }
        for (i, v) in service.volumes.iter().enumerate() {
            if v.kind == VolumeKind::Bind && v.source.as_deref().unwrap_or("").is_empty() {
                ctx.sink.push(Diagnostic::error(
                    DiagnosticKind::MissingKey,
                    tree.span_at(&["services", name, "volumes", &i.to_string()]),
                    format!(
                        "services.{name}.volumes[{i}]: invalid mount config for type \"bind\": field Source must not be empty"
                    ),
                ));
            }
        }
        devices(ctx, name, service.deploy.as_ref(), tree);
        networks(ctx, project, name, tree);
    }
    ports(ctx, project, tree);
    routes(ctx, project, tree);
}

/// Each network a service joins is defined at the top level (`default`
/// is, unless every service names its networks).
fn networks(ctx: &mut Ctx<'_>, project: &Project, name: &str, tree: &Node) {
    let Some(joined) = project
        .services
        .get(name)
        .and_then(|s| s.other.get("networks"))
        .and_then(Json::as_object)
    else {
        return;
    };
    let known: Vec<String> = project.networks.keys().cloned().collect();
    for key in joined
        .keys()
        .filter(|k| *k != "default" && !project.networks.contains_key(*k))
    {
        let span = tree
            .key_span_at(&["services", name, "networks"], key)
            .unwrap_or_else(|| tree.span_at(&["services", name, "networks"]));
        let mut diag = Diagnostic::error(
            DiagnosticKind::UnknownNetwork,
            span,
            format!("service {name} refers to undefined network {key:?}"),
        );
        diag = match crate::schema::closest(key, &known) {
            Some(near) => diag.with_help(format!("did you mean `{near}`?")),
            None => diag.with_help(format!(
                "define it under the top-level `networks:` ({key}: {{}})"
            )),
        };
        ctx.sink.push(diag);
    }
}

fn dependencies(ctx: &mut Ctx<'_>, project: &Project, tree: &Node) {
    let known: Vec<String> = project.services.keys().cloned().collect();
    for (name, service) in &project.services {
        for (dep, d) in &service.depends_on {
            let span = tree
                .key_span_at(&["services", name, "depends_on"], dep)
                .unwrap_or_else(|| tree.span_at(&["services", name]));
            let Some(target) = project.services.get(dep) else {
                if project.disabled_services.contains_key(dep) {
                    continue; // reported with the profiles
                }
                let message = format!("service {name} depends on undefined service {dep:?}");
                let mut diag = if d.required {
                    Diagnostic::error(DiagnosticKind::UnknownService, span, message)
                } else {
                    Diagnostic::warning(
                        DiagnosticKind::UnknownService,
                        span,
                        format!("{message}; ignored as it is not required"),
                    )
                };
                if let Some(near) = crate::schema::closest(dep, &known) {
                    diag = diag.with_help(format!("did you mean `{near}`?"));
                }
                ctx.sink.push(diag);
                continue;
            };
            if d.condition == Condition::ServiceHealthy {
                let has_check = target.healthcheck.as_ref().is_some_and(|h| h.is_enabled());
                if !has_check && target.settings.ready.is_none() {
                    ctx.sink.push(
                        Diagnostic::error(
                            DiagnosticKind::InvalidValue,
                            span,
                            format!(
                                "service {name} waits for {dep} to be healthy, but {dep} has no healthcheck"
                            ),
                        )
                        .with_help(format!(
                            "add a `healthcheck` or `x-berth: {{ready: ...}}` to {dep}, or use condition: service_started"
                        )),
                    );
                }
            }
        }
    }
}

/// Reports each dependency cycle once, with its whole path.
fn cycles(ctx: &mut Ctx<'_>, project: &Project, tree: &Node) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let names: Vec<&String> = project.services.keys().collect();
    let index: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let mut marks = vec![Mark::New; names.len()];
    let mut reported = false;
    for start in 0..names.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // Iterative DFS keeping the current path.
        let mut path: Vec<usize> = vec![start];
        let mut iters: Vec<Vec<usize>> = vec![deps(project, names[start], &index)];
        marks[start] = Mark::Open;
        while let Some(next) = iters.last_mut().and_then(Vec::pop) {
            match marks[next] {
                Mark::New => {
                    marks[next] = Mark::Open;
                    path.push(next);
                    iters.push(deps(project, names[next], &index));
                }
                Mark::Open => {
                    if let Some(pos) = path.iter().position(|p| *p == next) {
                        let mut cycle: Vec<&str> =
                            path[pos..].iter().map(|i| names[*i].as_str()).collect();
                        cycle.push(names[next]);
                        let first = names[path[pos]];
                        let second = cycle.get(1).copied().unwrap_or(first);
                        ctx.sink.push(
                            Diagnostic::error(
                                DiagnosticKind::DependencyCycle,
                                tree.key_span_at(&["services", first, "depends_on"], second)
                                    .unwrap_or(Span::NONE),
                                format!("dependency cycle detected: {}", cycle.join(" -> ")),
                            )
                            .with_help("remove one of these depends_on entries"),
                        );
                        reported = true;
                    }
                }
                Mark::Done => {}
            }
            while iters.last().is_some_and(Vec::is_empty) {
                iters.pop();
                if let Some(done) = path.pop() {
                    marks[done] = Mark::Done;
                }
            }
        }
        if reported {
            return;
        }
    }
}

fn deps(project: &Project, name: &str, index: &HashMap<&str, usize>) -> Vec<usize> {
    let mut d: Vec<usize> = project
        .services
        .get(name)
        .map(|s| {
            s.depends_on
                .keys()
                .filter_map(|k| index.get(k.as_str()).copied())
                .collect()
        })
        .unwrap_or_default();
    d.reverse(); // popped from the end: visit in file order
    d
}

fn ports(ctx: &mut Ctx<'_>, project: &Project, tree: &Node) {
    struct Bound<'a> {
        service: &'a str,
        index: usize,
        ip: IpAddr,
        range: PortRange,
    }
    let mut bound: Vec<Bound<'_>> = Vec::new();
    // (protocol, port) -> indexes in `bound`: linear in the ports declared,
    // however long their ranges.
    let mut by_port: HashMap<(Protocol, u16), Vec<usize>> = HashMap::new();
    for (name, service) in &project.services {
        for (i, p) in service.ports.iter().enumerate() {
            let Some(published) = &p.published else {
                continue;
            };
            let range = *published;
            if range.start == 0 {
                continue; // "0" = any free port
            }
            let ip = p.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            let wildcard = |ip: IpAddr| ip.is_unspecified();
            let clash = range
                .ports()
                .filter_map(|port| by_port.get(&(p.protocol, port)))
                .flatten()
                .map(|&j| &bound[j])
                .find(|b| b.ip == ip || wildcard(b.ip) || wildcard(ip));
            if let Some(other) = clash {
                let port = range.start.max(other.range.start);
                ctx.sink.push(
                    Diagnostic::error(
                        DiagnosticKind::PortConflict,
                        tree.span_at(&["services", name, "ports", &i.to_string()]),
                        format!(
                            "host port {port}/{} is published by both {} (ports[{}]) and {name} (ports[{i}])",
                            p.protocol, other.service, other.index
                        ),
                    )
                    .with_help("publish one of them on another host port"),
                );
                continue;
            }
            for port in range.ports() {
                by_port
                    .entry((p.protocol, port))
                    .or_default()
                    .push(bound.len());
            }
            bound.push(Bound {
                service: name,
                index: i,
                ip,
                range,
            });
        }
    }
}

fn routes(ctx: &mut Ctx<'_>, project: &Project, tree: &Node) {
    let Some(proxy) = &project.settings.proxy else {
        return;
    };
    let known: Vec<String> = project.services.keys().cloned().collect();
    let mut seen: HashMap<(Option<&str>, &str), usize> = HashMap::new();
    for (i, route) in proxy.routes.iter().enumerate() {
        let at = |k: &str| tree.span_at(&["x-berth", "proxy", "routes", &i.to_string(), k]);
        if let Some(first) = seen.insert((route.host.as_deref(), route.path.as_str()), i) {
            ctx.sink.push(Diagnostic::error(
                DiagnosticKind::Conflict,
                at("path"),
                format!(
                    "x-berth.proxy.routes[{i}]: path {:?} is already routed by routes[{first}]",
                    route.path
                ),
            ));
        }
        let RouteTarget::Service { service, port, .. } = &route.target else {
            continue;
        };
        let Some(target) = project.services.get(service) else {
            let disabled = project.disabled_services.contains_key(service);
            let mut d = Diagnostic::error(
                DiagnosticKind::UnknownService,
                at("service"),
                if disabled {
                    format!(
                        "x-berth.proxy.routes[{i}] routes to service {service:?}, which is disabled by its profiles"
                    )
                } else {
                    format!("x-berth.proxy.routes[{i}] routes to undefined service {service:?}")
                },
            );
            if let Some(near) = crate::schema::closest(service, &known) {
                d = d.with_help(format!("did you mean `{near}`?"));
            }
            ctx.sink.push(d);
            continue;
        };
        let declared: Vec<u16> = declared_ports(target);
        match port {
            Some(p) if !declared.contains(p) => ctx.sink.push(
                Diagnostic::error(
                    DiagnosticKind::InvalidValue,
                    at("port"),
                    format!("x-berth.proxy.routes[{i}]: service {service} does not declare port {p}"),
                )
                .with_help(format!("declare it under `expose` or `ports` of {service}")),
            ),
            None if declared.len() > 1 => ctx.sink.push(
                Diagnostic::error(
                    DiagnosticKind::MissingKey,
                    at("service"),
                    format!(
                        "x-berth.proxy.routes[{i}]: service {service} declares several ports ({}); say which with `port:`",
                        declared.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
                    ),
                ),
            ),
            _ => {}
        }
    }
}

/// The container ports a service declares (`ports` targets and `expose`), in order.
pub(crate) fn declared_ports(service: &crate::model::Service) -> Vec<u16> {
    let mut out: Vec<u16> = Vec::new();
    for p in &service.ports {
        if !out.contains(&p.target) {
            out.push(p.target);
        }
    }
    for e in &service.expose {
        for p in e.ports.ports() {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

fn devices(ctx: &mut Ctx<'_>, name: &str, deploy: Option<&crate::model::Deploy>, tree: &Node) {
    let Some(devices) = deploy
        .and_then(|d| d.resources.as_ref())
        .and_then(|r| r.reservations.as_ref())
        .and_then(|r| r.devices.as_ref())
        .and_then(Json::as_array)
    else {
        return;
    };
    for (i, d) in devices.iter().enumerate() {
        let span = tree.span_at(&[
            "services",
            name,
            "deploy",
            "resources",
            "reservations",
            "devices",
            &i.to_string(),
        ]);
        if d.get("count").is_some() && d.get("device_ids").is_some() {
            ctx.sink.error(
                DiagnosticKind::Conflict,
                span,
                format!("services.{name}.deploy.resources.reservations.devices[{i}]: \"count\" and \"device_ids\" attributes are exclusive"),
            );
        }
        if let Some(Json::String(s)) = d.get("count")
            && s != "all"
            && s.parse::<i64>().is_err()
        {
            ctx.sink.error(
                    DiagnosticKind::InvalidValue,
                    span,
                    format!("services.{name}.deploy.resources.reservations.devices[{i}].count: invalid value \"{s}\", the only value allowed is 'all' or a number"),
                );
        }
    }
}

/// `external: true` resources are not created, so creation attributes on
/// them are contradictions.
pub(crate) fn external_resources(ctx: &mut Ctx<'_>, tree: &Node, kind: &str) {
    let Some(items) = tree.get(kind).and_then(Node::as_map) else {
        return;
    };
    for (name, entry) in items {
        let external = matches!(
            entry.value.get("external").map(|n| &n.value),
            Some(crate::yaml::Value::Bool(true))
        );
        if !external {
            continue;
        }
        for attr in ["driver", "driver_opts", "labels"] {
            if entry.value.get(attr).is_some() {
                ctx.sink.push(Diagnostic::error(
                    DiagnosticKind::Conflict,
                    tree.key_span_at(&[kind, name], attr).unwrap_or(entry.value.span),
                    format!("{kind}.{name}: conflicting parameters \"external\" and \"{attr}\" specified"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::diag::DiagnosticKind;

    #[test]
    fn a_network_the_file_does_not_define_is_an_error_at_its_place() {
        let text = "services:\n  a:\n    image: x\n    networks: [front, bak]\n  b:\n    image: x\n    networks:\n      back: {aliases: [db]}\nnetworks:\n  front: {}\n  back: {internal: true}\n";
        let Err(d) = crate::testsupport::load_text(text) else {
            panic!("loaded");
        };
        let found: Vec<(DiagnosticKind, u32, u32, &str)> = d
            .errors
            .iter()
            .map(|e| {
                (
                    e.kind.clone(),
                    e.span.line,
                    e.span.column,
                    e.message.as_str(),
                )
            })
            .collect();
        assert_eq!(
            found,
            [(
                DiagnosticKind::UnknownNetwork,
                4,
                23,
                "service a refers to undefined network \"bak\""
            )]
        );
        assert_eq!(d.errors[0].help.as_deref(), Some("did you mean `back`?"));
    }
}
