//! Every Compose field of a service maps to something or to a warning:
//! this is the list of those that become a warning, and why.

use berth_compose::{Service, SignalId};

use crate::context::Ctx;

/// Service keys that other modules map (no warning from here).
const MAPPED: &[&str] = &[
    "annotations",
    "build",
    "cap_add",
    "cap_drop",
    "configs",
    "cpus",
    "dns_opt",
    "dns_search",
    "extends",
    "extra_hosts",
    "group_add",
    "hostname",
    "label_file",
    "mem_limit",
    "mem_reservation",
    "networks",
    "platform",
    "post_start",
    "pre_stop",
    "privileged",
    "pull_policy",
    "read_only",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "sysctls",
    "tmpfs",
    "tty",
];

const CPU: &str =
    "left out: only `cpus` and deploy.resources carry over, as CPU limits and requests";
const NAMESPACES: &str = "left out: a pod's namespaces are the kubelet's (hostIPC, hostPID, hostUsers can be set by hand)";
const WINDOWS: &str = "left out: a setting of Windows containers";

/// Keys that have no Kubernetes equivalent, and what happens instead.
const LEFT_OUT: &[(&str, &str)] = &[
    (
        "attach",
        "left out: it only changes what `docker compose up` prints",
    ),
    ("blkio_config", "left out: a pod spec has no I/O limits"),
    (
        "cgroup",
        "left out: pods get their cgroups from the kubelet",
    ),
    (
        "cgroup_parent",
        "left out: pods get their cgroups from the kubelet",
    ),
    (
        "container_name",
        "left out: pods are named by their controller; other services reach this one at its Service name",
    ),
    ("cpu_count", CPU),
    ("cpu_percent", CPU),
    ("cpu_period", CPU),
    ("cpu_quota", CPU),
    ("cpu_rt_period", CPU),
    ("cpu_rt_runtime", CPU),
    ("cpu_shares", CPU),
    ("cpuset", CPU),
    ("credential_spec", WINDOWS),
    (
        "develop",
        "left out: `docker compose watch` has no cluster equivalent",
    ),
    (
        "device_cgroup_rules",
        "left out: devices come from a device plugin in Kubernetes",
    ),
    (
        "devices",
        "left out: devices come from a device plugin in Kubernetes",
    ),
    (
        "dns",
        "left out: pods resolve through the cluster DNS, which is how Service names resolve",
    ),
    ("domainname", "left out: a pod's domain is the cluster's"),
    (
        "external_links",
        "left out: only the namespace's Services resolve",
    ),
    (
        "gpus",
        "left out: request GPUs as a device plugin's resource (e.g. nvidia.com/gpu)",
    ),
    (
        "init",
        "left out: Kubernetes runs no init process in the container; build one (tini) into the image",
    ),
    ("ipc", NAMESPACES),
    ("isolation", WINDOWS),
    (
        "links",
        "left out: services reach each other at their Service names; link aliases do not resolve",
    ),
    (
        "mac_address",
        "left out: a pod's address is the cluster network's",
    ),
    ("mem_swappiness", "left out: swap is the node's setting"),
    ("memswap_limit", "left out: swap is the node's setting"),
    ("models", "left out: no cluster equivalent"),
    (
        "oom_kill_disable",
        "left out: the kubelet sets OOM scores from the pod's QoS class",
    ),
    (
        "oom_score_adj",
        "left out: the kubelet sets OOM scores from the pod's QoS class",
    ),
    ("pid", NAMESPACES),
    (
        "pids_limit",
        "left out: Kubernetes limits processes per node (the kubelet's podPidsLimit), not in a pod spec",
    ),
    ("provider", "left out: no cluster equivalent"),
    (
        "runtime",
        "left out: set runtimeClassName by hand if the cluster has a RuntimeClass for it",
    ),
    (
        "storage_opt",
        "left out: a pod's storage driver is the node's",
    ),
    (
        "ulimits",
        "left out: Kubernetes has no per-pod ulimits; the container runtime's defaults apply",
    ),
    (
        "use_api_socket",
        "left out: there is no Docker Engine to reach in a cluster",
    ),
    ("userns_mode", NAMESPACES),
    ("uts", NAMESPACES),
    (
        "volumes_from",
        "left out: declare the same volumes on this service",
    ),
];

/// Warns about the service's fields that do not carry over.
pub(crate) fn warn_left_out(ctx: &mut Ctx<'_>, s: &Service) {
    for key in s.other.keys() {
        if key.starts_with("x-") || MAPPED.contains(&key.as_str()) {
            continue;
        }
        let why = LEFT_OUT.iter().find(|(k, _)| k == key).map_or(
            "left out: berth does not know how to export it",
            |(_, why)| why,
        );
        ctx.warn(format!("services.{}.{key}", s.name), why);
    }
    if s.logging.is_some() {
        ctx.warn(
            format!("services.{}.logging", s.name),
            "left out: the container runtime keeps the logs and the kubelet rotates them \
             (containerLogMaxSize); read them with kubectl logs",
        );
    }
    if let Some(signal) = &s.stop_signal
        && !matches!(signal.id(), SignalId::Named("TERM") | SignalId::Number(15))
    {
        ctx.warn(
            format!("services.{}.stop_signal", s.name),
            format!(
                "{signal} is left out: Kubernetes stops a container with its image's STOPSIGNAL, \
                 else SIGTERM (lifecycle.stopSignal is alpha)"
            ),
        );
    }
}
