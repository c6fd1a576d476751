//! What the native process runtime cannot honour.
//!
//! Container-only attributes are warned about once per attribute, naming
//! every service that uses it, so a file written for `docker compose` loads
//! with a short, honest list of what will not happen. Attributes whose
//! meaning would silently change are errors.

use indexmap::IndexMap;

use crate::context::Ctx;
use crate::diag::{Diagnostic, DiagnosticKind, Span};
use crate::model::{Project, Service, VolumeKind};
use crate::yaml::Node;

/// Container attributes that have no native equivalent, and what happens instead.
const IGNORED: &[(&str, &str)] = &[
    (
        "build",
        "images are not built natively; use `x-berth.build` for a native build step",
    ),
    ("privileged", "processes run with berth's own privileges"),
    ("devices", "processes see the host's devices"),
    ("container_name", "there are no containers"),
    ("hostname", "processes see the host's name"),
    ("domainname", "processes see the host's domain"),
    ("mac_address", "processes share the host's network"),
    ("dns", "processes use the host's resolver"),
    ("dns_search", "processes use the host's resolver"),
    ("dns_opt", "processes use the host's resolver"),
    ("extra_hosts", "processes use the host's /etc/hosts"),
    ("ipc", "processes share the host's IPC namespace"),
    ("pid", "processes share the host's PID namespace"),
    ("uts", "processes share the host's UTS namespace"),
    ("cgroup", "no cgroup namespace is created"),
    (
        "cgroup_parent",
        "replicas' cgroups go under the cgroup berth runs in",
    ),
    ("cpu_count", "CPU limits are not applied"),
    ("cpu_percent", "CPU limits are not applied"),
    ("cpu_period", "CPU limits are not applied"),
    ("cpu_quota", "CPU limits are not applied"),
    ("cpuset", "CPU pinning is not applied"),
    ("mem_reservation", "memory reservations are not applied"),
    ("shm_size", "the host's /dev/shm is shared"),
    ("sysctls", "kernel parameters are not changed"),
    ("userns_mode", "no user namespace is created"),
    ("runtime", "there is no container runtime"),
    ("isolation", "there is no container runtime"),
    ("platform", "the host's platform is used"),
    ("secrets", "secret files are not mounted"),
    ("configs", "config files are not mounted"),
    (
        "links",
        "service names do not resolve as host names natively; services reach each other at localhost:<port>",
    ),
    (
        "external_links",
        "service names do not resolve as host names natively",
    ),
    ("storage_opt", "no storage driver is used"),
    ("oom_kill_disable", "OOM settings are not applied"),
    ("blkio_config", "I/O limits are not applied"),
    ("device_cgroup_rules", "no device cgroup is created"),
    ("gpus", "GPUs are not reserved"),
];

/// The service's keys the native runtime does not honour (or not all of):
/// (what to name, the key it is written under, why).
fn unhonoured(service: &Service) -> Vec<(&'static str, &'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str, &'static str)> = IGNORED
        .iter()
        .filter(|(field, _)| !(*field == "build" && service.settings.build.is_some()))
        .filter(|(field, _)| service.other.contains_key(*field))
        .map(|(field, why)| (*field, *field, *why))
        .collect();
    if let Some(opts) = service.other.get("security_opt").and_then(|o| o.as_array())
        && opts.iter().any(|o| {
            !o.as_str()
                .is_some_and(|o| o.starts_with("no-new-privileges"))
        })
    {
        out.push((
            "security_opt",
            "security_opt",
            "only no-new-privileges is applied; no seccomp, AppArmor or SELinux profile",
        ));
    }
    if let Some(networks) = service.other.get("networks").and_then(|n| n.as_object())
        && networks.keys().any(|k| k != "default")
    {
        out.push((
            "networks",
            "networks",
            "networks are not isolated: every service shares the host's loopback",
        ));
    }
    if let Some(resources) = service.deploy.as_ref().and_then(|d| d.resources.as_ref()) {
        if resources.reservations.is_some() {
            out.push((
                "deploy.resources.reservations",
                "deploy",
                "nothing is reserved; limits are applied",
            ));
        }
        if let Some(limits) = resources.limits.as_ref()
            && (limits.devices.is_some() || limits.generic_resources.is_some())
        {
            out.push((
                "deploy.resources.limits.devices",
                "deploy",
                "devices are not reserved",
            ));
        }
    }
    out
}

pub(crate) fn check(ctx: &mut Ctx<'_>, project: &Project, tree: &Node) {
    let mut uses: IndexMap<String, (Vec<String>, Span, String)> = IndexMap::new();
    let mut note = |field: &str, service: &str, span: Span, why: &str| {
        let e = uses
            .entry(field.to_string())
            .or_insert_with(|| (Vec::new(), span, why.to_string()));
        if !e.0.iter().any(|s| s == service) {
            e.0.push(service.to_string());
        }
    };
    for (name, service) in &project.services {
        if project.runtime_of(service, None) == crate::xberth::RuntimeKind::Docker {
            // A container honours what a container does, but for what
            // berth publishes itself.
            sctp_ports(ctx, name, service, tree);
            continue;
        }
        let key_span = |k: &str| {
            tree.key_span_at(&["services", name], k)
                .unwrap_or_else(|| tree.span_at(&["services", name]))
        };
        for (field, key, why) in unhonoured(service) {
            note(field, name, key_span(key), why);
        }
        for (i, v) in service.volumes.iter().enumerate() {
            if matches!(
                v.kind,
                VolumeKind::Npipe | VolumeKind::Cluster | VolumeKind::Image
            ) {
                note(
                    &format!("volumes (type {})", v.kind.as_str()),
                    name,
                    tree.span_at(&["services", name, "volumes", &i.to_string()]),
                    "only bind mounts, named volumes and tmpfs have a native meaning",
                );
            }
        }
        if let Some(driver) = service.logging.as_ref().and_then(|l| l.driver.as_deref())
            && !matches!(driver, "json-file" | "local")
        {
            note(
                "logging.driver",
                name,
                tree.span_at(&["services", name, "logging", "driver"]),
                "logs go to berth's log files and stream",
            );
        }
        network_mode(ctx, name, service.network_mode.as_deref(), tree);
    }
    for (field, (services, span, why)) in uses {
        ctx.sink.push(Diagnostic::warning(
            DiagnosticKind::Unsupported,
            span,
            format!(
                "{field} is not honoured by the native runtime ({why}); used by {}",
                services.join(", ")
            ),
        ));
    }
}

/// A container's `/sctp` ports: berth publishes a container's ports
/// itself, and relays TCP and UDP only.
fn sctp_ports(ctx: &mut Ctx<'_>, name: &str, service: &Service, tree: &Node) {
    for (i, p) in service.ports.iter().enumerate() {
        if p.protocol == crate::model::Protocol::Sctp {
            ctx.sink.push(Diagnostic::warning(
                DiagnosticKind::Unsupported,
                tree.span_at(&["services", name, "ports", &i.to_string()]),
                format!(
                    "services.{name}.ports[{i}]: {}/sctp is not published: berth relays tcp and udp ports only",
                    p.target
                ),
            ));
        }
    }
}

/// `network_mode` values the native runtime would silently change.
fn network_mode(ctx: &mut Ctx<'_>, name: &str, mode: Option<&str>, tree: &Node) {
    match mode {
        Some(mode) if mode.starts_with("container:") => ctx.sink.push(
            Diagnostic::error(
                DiagnosticKind::Unsupported,
                tree.span_at(&["services", name, "network_mode"]),
                format!("services.{name}.network_mode: {mode:?} joins another container's network, which the native runtime cannot do"),
            )
            .with_help("remove network_mode: native services already share the host's loopback"),
        ),
        Some("none") => ctx.sink.push(
            Diagnostic::error(
                DiagnosticKind::Unsupported,
                tree.span_at(&["services", name, "network_mode"]),
                format!("services.{name}.network_mode: \"none\" would cut the service off the network, which the native runtime cannot do"),
            )
            .with_help("remove network_mode, or run this service with docker compose"),
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use crate::diag::DiagnosticKind;

    fn load(text: &str, native_checks: bool) -> Result<crate::Loaded, crate::Diagnostics> {
        let mut o = crate::LoadOptions::new(std::env::temp_dir(), Default::default());
        o.files = vec!["-".into()];
        o.stdin = Some(text.to_string());
        o.native_checks = native_checks;
        crate::load(&o)
    }

    #[test]
    fn a_containers_sctp_port_is_a_warning_at_its_place() {
        let text = "services:\n  a:\n    image: x\n    ports: [\"9000/udp\", \"9000/sctp\"]\n";
        let loaded = load(text, true).map_err(|d| d.render(false)).unwrap();
        let found: Vec<(u32, &str)> = loaded
            .warnings
            .iter()
            .map(|w| (w.span.line, w.message.as_str()))
            .collect();
        assert_eq!(
            found,
            [(
                4,
                "services.a.ports[1]: 9000/sctp is not published: berth relays tcp and udp ports only"
            )]
        );
    }

    /// `berth export kubernetes` loads files written for containers: what
    /// only the native runtime cannot do is neither a warning nor an error.
    #[test]
    fn native_checks_can_be_turned_off() {
        let text = "services:\n  a:\n    command: [x]\n    network_mode: none\n    secrets: [s]\nsecrets:\n  s: {environment: S}\n";
        let errors = load(text, true).err().unwrap().errors;
        assert!(
            errors.iter().any(|e| e.kind == DiagnosticKind::Unsupported),
            "{errors:#?}"
        );
        let loaded = load(text, false).map_err(|d| d.render(false)).unwrap();
        assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    }
}
