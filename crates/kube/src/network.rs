//! `ports` and `expose` to Services.
//!
//! Every declared port is on a ClusterIP Service named like the service,
//! on the container's port: services reach each other at `NAME:PORT` as
//! they do under Compose. Ports published on the host (not on a loopback
//! address, which means "for this machine only") are exposed outside the
//! cluster only when `x-berth.kube.service_type` asks for it, by a second
//! Service `NAME-public` of that type on the published port numbers.

use berth_compose::{Protocol, Service, ServiceType};
use k8s_openapi::api::core::v1::{ContainerPort, Service as KubeService, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::context::{Ctx, Kind, component};
use crate::model::Object;

/// A port the service declares (`ports` target or `expose`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Declared {
    pub port: u16,
    pub protocol: &'static str,
    pub name: String,
}

fn protocol(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

/// Whether `s` may name a port (IANA service name: at most 15 lowercase
/// letters, digits and single `-`, with a letter).
fn is_port_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// The ports a service declares, each once, in file order (`ports`, then
/// `expose`).
pub(crate) fn declared(s: &Service) -> Vec<Declared> {
    let mut out: Vec<Declared> = Vec::new();
    let mut push = |port: u16, p: Protocol, name: Option<&str>| {
        let protocol = protocol(p);
        if port == 0 || out.iter().any(|d| d.port == port && d.protocol == protocol) {
            return;
        }
        let generated = format!("{}-{port}", protocol.to_ascii_lowercase());
        let name = name
            .filter(|n| is_port_name(n) && !out.iter().any(|d| d.name == *n))
            .map_or(generated, str::to_string);
        out.push(Declared {
            port,
            protocol,
            name,
        });
    };
    for p in &s.ports {
        push(p.target, p.protocol, p.name.as_deref());
    }
    for e in &s.expose {
        for port in e.ports.ports() {
            push(port, e.protocol, None);
        }
    }
    out
}

/// The first declared TCP port: what probes and waits connect to.
pub(crate) fn first_tcp(s: &Service) -> Option<u16> {
    declared(s)
        .iter()
        .find(|d| d.protocol == "TCP")
        .map(|d| d.port)
}

/// The container's ports.
pub(crate) fn container_ports(s: &Service) -> Option<Vec<ContainerPort>> {
    let ports: Vec<ContainerPort> = declared(s)
        .into_iter()
        .map(|d| ContainerPort {
            container_port: i32::from(d.port),
            name: Some(d.name),
            protocol: Some(d.protocol.to_string()),
            ..ContainerPort::default()
        })
        .collect();
    (!ports.is_empty()).then_some(ports)
}

/// A service's Services.
pub(crate) fn services(ctx: &mut Ctx<'_>, s: &Service) -> Vec<Object> {
    let declared = declared(s);
    if declared.is_empty() {
        no_ports_warning(ctx, s);
        return Vec::new();
    }
    let name = ctx.name(&s.name);
    let component = if ctx.kind(&s.name) == Kind::Job {
        component::JOB
    } else {
        component::SERVER
    };
    let ports = declared
        .iter()
        .map(|d| ServicePort {
            name: Some(d.name.clone()),
            port: i32::from(d.port),
            target_port: Some(IntOrString::Int(i32::from(d.port))),
            protocol: Some(d.protocol.to_string()),
            ..ServicePort::default()
        })
        .collect();
    let mut out = vec![service(ctx, &name, &name, component, "ClusterIP", ports)];
    let public = published(s, &declared);
    match (s.settings.kube.service_type, public.is_empty()) {
        (Some(ServiceType::ClusterIp) | None, true) => {}
        (Some(ServiceType::ClusterIp) | None, false) => {
            let routed = ctx.project.settings.proxy.as_ref().is_some_and(|p| {
                p.routes.iter().any(|r| matches!(&r.target, berth_compose::RouteTarget::Service { service, .. } if *service == s.name))
            });
            if !routed {
                let list: Vec<String> = public.iter().map(|p| format!("{}:{}", p.port, p.target_port.as_ref().map_or(String::new(), port_text))).collect();
                ctx.warn(
                    format!("services.{}.ports", s.name),
                    format!(
                        "{} published on the host {} reachable inside the cluster only (ClusterIP); \
                         set x-berth.kube.service_type: LoadBalancer or NodePort, or route {} through x-berth.proxy",
                        list.join(", "),
                        if list.len() == 1 { "is" } else { "are" },
                        if list.len() == 1 { "it" } else { "them" },
                    ),
                );
            }
        }
        (Some(_), true) => ctx.warn(
            format!("services.{}.x-berth.kube.service_type", s.name),
            "no port is published on the host (ports on 127.0.0.1 stay inside): no public Service is made",
        ),
        (Some(kind), false) => {
            let kind = if kind == ServiceType::NodePort { "NodePort" } else { "LoadBalancer" };
            let ports = node_ports(ctx, s, public, kind);
            let mut public_name = format!("{name}-public");
            if ctx.services.iter().any(|(_, n)| n == public_name) {
                // A service of that name exists: keep the two Services apart.
                let base: String = name.chars().take(63 - "-public-".len() - 6).collect();
                let hash = crate::names::short_hash(&s.name);
                public_name = format!("{}-public-{hash}", base.trim_end_matches('-'));
            }
            out.push(service(ctx, &public_name, &name, component, kind, ports));
        }
    }
    out
}

/// Under Compose a service is reached by its name on any port; in a
/// cluster only through a Service, made of the declared ports.
fn no_ports_warning(ctx: &mut Ctx<'_>, s: &Service) {
    let dependents: Vec<&str> = ctx
        .project
        .services
        .values()
        .filter(|d| {
            d.depends_on.get(&s.name).is_some_and(|dep| {
                dep.condition != berth_compose::Condition::ServiceCompletedSuccessfully
            })
        })
        .map(|d| d.name.as_str())
        .collect();
    if s.settings.kube.service_type.is_some() {
        ctx.warn(
            format!("services.{}.x-berth.kube.service_type", s.name),
            "the service declares no port: no Service is made",
        );
    } else if !dependents.is_empty() {
        ctx.warn(
            format!("services.{}", s.name),
            format!(
                "declares no port (ports or expose), so it gets no Service and its name does not \
                 resolve in the cluster, and {} cannot wait for it; declare the ports it is \
                 reached on with `expose`",
                dependents.join(", ")
            ),
        );
    }
}

fn port_text(p: &IntOrString) -> String {
    match p {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

fn service(
    ctx: &Ctx<'_>,
    name: &str,
    app: &str,
    component: &str,
    kind: &str,
    ports: Vec<ServicePort>,
) -> Object {
    Object::from(KubeService {
        metadata: ctx.meta(name, app, component),
        spec: Some(ServiceSpec {
            type_: Some(kind.to_string()),
            selector: Some(ctx.selector_labels(app)),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        ..KubeService::default()
    })
}

/// Ports published on a non-loopback address: the published port (or the
/// container's, when the host picks) to the container's.
fn published(s: &Service, declared: &[Declared]) -> Vec<ServicePort> {
    let mut out: Vec<ServicePort> = Vec::new();
    for p in &s.ports {
        let Some(range) = p.published else { continue };
        if p.host_ip.is_some_and(|ip| ip.is_loopback()) || p.target == 0 {
            continue;
        }
        let port = if range.start == 0 {
            p.target
        } else {
            range.start
        };
        let protocol = protocol(p.protocol);
        if out
            .iter()
            .any(|o| o.port == i32::from(port) && o.protocol.as_deref() == Some(protocol))
        {
            continue;
        }
        let name = declared
            .iter()
            .find(|d| d.port == p.target && d.protocol == protocol)
            .map_or_else(
                || format!("{}-{port}", protocol.to_ascii_lowercase()),
                |d| d.name.clone(),
            );
        out.push(ServicePort {
            name: Some(if out.iter().any(|o| o.name.as_deref() == Some(&name)) {
                format!("{}-{port}", protocol.to_ascii_lowercase())
            } else {
                name
            }),
            port: i32::from(port),
            target_port: Some(IntOrString::Int(i32::from(p.target))),
            protocol: Some(protocol.to_string()),
            ..ServicePort::default()
        });
    }
    out
}

/// A NodePort keeps the published number when it is in the default node
/// port range; otherwise the cluster picks one.
fn node_ports(
    ctx: &mut Ctx<'_>,
    s: &Service,
    mut ports: Vec<ServicePort>,
    kind: &str,
) -> Vec<ServicePort> {
    if kind != "NodePort" {
        return ports;
    }
    let mut outside = Vec::new();
    for p in &mut ports {
        if (30000..=32767).contains(&p.port) {
            p.node_port = Some(p.port);
        } else {
            outside.push(p.port.to_string());
        }
    }
    if !outside.is_empty() {
        ctx.warn(
            format!("services.{}.ports", s.name),
            format!(
                "{} {} outside the node port range (30000-32767): the cluster picks the node port",
                outside.join(", "),
                if outside.len() == 1 { "is" } else { "are" }
            ),
        );
    }
    ports
}

/// Compose networks isolate services; a cluster network does not. Warns
/// for each service that is on fewer networks than all of them (so some
/// service could not reach it under Compose), and for aliases and fixed
/// addresses.
pub(crate) fn network_warnings(ctx: &mut Ctx<'_>) {
    let of = |s: &Service| -> Vec<String> {
        s.other
            .get("networks")
            .and_then(serde_json::Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    let mut all: Vec<String> = ctx.project.services.values().flat_map(of).collect();
    all.sort();
    all.dedup();
    for s in ctx.project.services.values() {
        let mine = of(s);
        if !mine.is_empty() && mine.len() < all.len() {
            ctx.warn(
                format!("services.{}.networks", s.name),
                format!(
                    "on {} only, but a cluster network isolates nothing: every pod can reach its \
                     Service (add a NetworkPolicy to restrict that)",
                    mine.join(", ")
                ),
            );
        }
        let Some(networks) = s
            .other
            .get("networks")
            .and_then(serde_json::Value::as_object)
        else {
            continue;
        };
        for (net, spec) in networks {
            for field in [
                "aliases",
                "ipv4_address",
                "ipv6_address",
                "link_local_ips",
                "mac_address",
            ] {
                if spec.get(field).is_some() {
                    ctx.warn(
                        format!("services.{}.networks.{net}.{field}", s.name),
                        "left out: pods reach each other through Service names and cluster addresses",
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_names() {
        assert!(is_port_name("http") && is_port_name("tcp-8080") && is_port_name("a1"));
        assert!(!is_port_name("8080") && !is_port_name("HTTP") && !is_port_name("a--b"));
        assert!(!is_port_name("a-very-long-port-name"));
    }
}
