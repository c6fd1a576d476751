//! `user`, `group_add`, `cap_drop`/`cap_add`, `read_only`, `privileged`,
//! `security_opt` and `sysctls` to security contexts.

use berth_compose::Service;
use k8s_openapi::api::core::v1::{
    AppArmorProfile, Capabilities, PodSecurityContext, SeccompProfile, SecurityContext, Sysctl,
};
use serde_json::Value as Json;

use crate::context::Ctx;

/// Sysctls the kubelet allows without `--allowed-unsafe-sysctls`.
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

/// `NET_ADMIN`, `cap_net_admin` -> `NET_ADMIN`, as Kubernetes writes them.
fn capability(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    upper.strip_prefix("CAP_").unwrap_or(&upper).to_string()
}

/// The main container's security context; `None` when nothing is set.
pub(crate) fn container(ctx: &mut Ctx<'_>, s: &Service) -> Option<SecurityContext> {
    let mut sc = SecurityContext::default();
    if let Some(user) = &s.user {
        user_ids(ctx, s, user, &mut sc);
    }
    let drop: Vec<String> = s
        .strings("cap_drop")
        .iter()
        .map(|c| capability(c))
        .collect();
    let add: Vec<String> = s.strings("cap_add").iter().map(|c| capability(c)).collect();
    if !drop.is_empty() || !add.is_empty() {
        sc.capabilities = Some(Capabilities {
            add: (!add.is_empty()).then_some(add),
            drop: (!drop.is_empty()).then_some(drop),
        });
    }
    if s.other.get("read_only").and_then(Json::as_bool) == Some(true) {
        sc.read_only_root_filesystem = Some(true);
    }
    if s.other.get("privileged").and_then(Json::as_bool) == Some(true) {
        sc.privileged = Some(true);
    }
    for (i, opt) in s.strings("security_opt").iter().enumerate() {
        security_opt(ctx, s, i, opt, &mut sc);
    }
    (sc != SecurityContext::default()).then_some(sc)
}

/// `user: UID[:GID]` (numbers; `root` is 0). Kubernetes cannot look up a
/// name: that is a warning.
fn user_ids(ctx: &mut Ctx<'_>, s: &Service, user: &str, sc: &mut SecurityContext) {
    let (u, g) = user.split_once(':').unwrap_or((user, ""));
    let id = |t: &str| {
        if t == "root" {
            Some(0)
        } else {
            t.parse::<i64>().ok()
        }
    };
    match (id(u), g) {
        (Some(uid), "") => sc.run_as_user = Some(uid),
        (Some(uid), g) if id(g).is_some() => {
            sc.run_as_user = Some(uid);
            sc.run_as_group = id(g);
        }
        _ => ctx.warn(
            format!("services.{}.user", s.name),
            format!(
                "{user:?} is a name, and Kubernetes only takes numeric IDs: the container runs as \
                 the image's USER; write the UID (and GID) of that user instead"
            ),
        ),
    }
}

fn security_opt(ctx: &mut Ctx<'_>, s: &Service, i: usize, opt: &str, sc: &mut SecurityContext) {
    let (key, value) = opt.split_once([':', '=']).unwrap_or((opt, ""));
    match (key, value) {
        ("no-new-privileges", "" | "true") => sc.allow_privilege_escalation = Some(false),
        ("no-new-privileges", _) => {}
        ("seccomp", "unconfined") => {
            sc.seccomp_profile = Some(SeccompProfile {
                type_: "Unconfined".into(),
                localhost_profile: None,
            });
        }
        ("apparmor", "docker-default") => {
            sc.app_armor_profile = Some(AppArmorProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            });
        }
        ("apparmor", "unconfined") => {
            sc.app_armor_profile = Some(AppArmorProfile {
                type_: "Unconfined".into(),
                localhost_profile: None,
            });
        }
        ("apparmor", profile) if !profile.is_empty() => {
            sc.app_armor_profile = Some(AppArmorProfile {
                type_: "Localhost".into(),
                localhost_profile: Some(profile.to_string()),
            });
        }
        _ => ctx.warn(
            format!("services.{}.security_opt[{i}]", s.name),
            format!("{opt:?} is left out: only no-new-privileges, seccomp:unconfined and apparmor profiles carry over"),
        ),
    }
}

/// The pod's security context: `group_add` and `sysctls`.
pub(crate) fn pod(ctx: &mut Ctx<'_>, s: &Service) -> Option<PodSecurityContext> {
    let mut groups = Vec::new();
    for g in s.strings("group_add") {
        match g.parse::<i64>() {
            Ok(gid) => groups.push(gid),
            Err(_) => ctx.warn(
                format!("services.{}.group_add", s.name),
                format!("{g:?} is a name, and Kubernetes only takes numeric group IDs: left out"),
            ),
        }
    }
    let mut sysctls = Vec::new();
    if let Some(map) = s.other.get("sysctls").and_then(Json::as_object) {
        for (name, value) in map {
            if !SAFE_SYSCTLS.contains(&name.as_str()) {
                ctx.warn(
                    format!("services.{}.sysctls.{name}", s.name),
                    "not a safe sysctl: pods are refused unless the kubelet allows it (--allowed-unsafe-sysctls)",
                );
            }
            let value = match value {
                Json::String(v) => v.clone(),
                other => other.to_string(),
            };
            sysctls.push(Sysctl {
                name: name.clone(),
                value,
            });
        }
    }
    if groups.is_empty() && sysctls.is_empty() {
        return None;
    }
    Some(PodSecurityContext {
        supplemental_groups: (!groups.is_empty()).then_some(groups),
        sysctls: (!sysctls.is_empty()).then_some(sysctls),
        ..PodSecurityContext::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_spelled_as_kubernetes_does() {
        assert_eq!(capability("cap_net_admin"), "NET_ADMIN");
        assert_eq!(capability("NET_BIND_SERVICE"), "NET_BIND_SERVICE");
        assert_eq!(capability("all"), "ALL");
    }
}
