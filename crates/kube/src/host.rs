//! What a service says about its host and network: `hostname`,
//! `extra_hosts`, `dns_search`, `dns_opt`, `network_mode: host`,
//! `platform`, to the pod spec.

use std::collections::BTreeMap;

use berth_compose::Service;
use k8s_openapi::api::core::v1::{HostAlias, PodDNSConfig, PodDNSConfigOption, PodSpec};
use serde_json::Value as Json;

use crate::context::Ctx;
use crate::names::is_dns_label;

/// Sets the pod's host and network settings from the service.
pub(crate) fn apply(ctx: &mut Ctx<'_>, s: &Service, spec: &mut PodSpec) {
    let place = |field: &str| format!("services.{}.{field}", s.name);
    if let Some(hostname) = s.other.get("hostname").and_then(Json::as_str) {
        if is_dns_label(hostname) {
            spec.hostname = Some(hostname.to_string());
        } else {
            ctx.warn(
                place("hostname"),
                format!("{hostname:?} is not a DNS label: left out"),
            );
        }
    }
    spec.host_aliases = host_aliases(ctx, s);
    let searches = s.strings("dns_search");
    let options: Vec<PodDNSConfigOption> = s
        .strings("dns_opt")
        .iter()
        .map(|o| {
            let (name, value) = match o.split_once(':') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (o.as_str(), None),
            };
            PodDNSConfigOption {
                name: Some(name.to_string()),
                value,
            }
        })
        .collect();
    if !searches.is_empty() || !options.is_empty() {
        spec.dns_config = Some(PodDNSConfig {
            nameservers: None,
            options: (!options.is_empty()).then_some(options),
            searches: (!searches.is_empty()).then_some(searches),
        });
    }
    match s.network_mode.as_deref() {
        None | Some("bridge" | "default") => {}
        Some("host") => {
            spec.host_network = Some(true);
            spec.dns_policy = Some("ClusterFirstWithHostNet".into());
            ctx.warn(
                place("network_mode"),
                "host: the pod uses its node's network (hostNetwork), and its ports take the node's",
            );
        }
        Some(mode) => ctx.warn(
            place("network_mode"),
            format!("{mode:?} is left out: a pod has a network of its own (containers that share one belong in one pod)"),
        ),
    }
    if let Some(platform) = s.other.get("platform").and_then(Json::as_str) {
        let mut parts = platform.split('/');
        if let (Some(os), Some(arch)) = (parts.next(), parts.next()) {
            spec.node_selector = Some(BTreeMap::from([
                ("kubernetes.io/os".to_string(), os.to_string()),
                ("kubernetes.io/arch".to_string(), arch.to_string()),
            ]));
        } else {
            ctx.warn(
                place("platform"),
                format!("{platform:?} is not OS/ARCH: left out"),
            );
        }
    }
}

/// `extra_hosts` (`host=ip` after loading) grouped by address.
fn host_aliases(ctx: &mut Ctx<'_>, s: &Service) -> Option<Vec<HostAlias>> {
    let mut by_ip: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in s.strings("extra_hosts") {
        let Some((host, ip)) = entry.split_once('=') else {
            continue;
        };
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        if ip.parse::<std::net::IpAddr>().is_err() {
            ctx.warn(
                format!("services.{}.extra_hosts", s.name),
                format!("{host}={ip}: {ip:?} is not an IP address (host-gateway has no cluster equivalent): left out"),
            );
            continue;
        }
        by_ip
            .entry(ip.to_string())
            .or_default()
            .push(host.to_string());
    }
    let aliases: Vec<HostAlias> = by_ip
        .into_iter()
        .map(|(ip, hostnames)| HostAlias {
            ip,
            hostnames: Some(hostnames),
        })
        .collect();
    (!aliases.is_empty()).then_some(aliases)
}
