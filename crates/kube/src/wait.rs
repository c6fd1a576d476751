//! `depends_on` to init containers that hold a pod back until what it
//! depends on is there.
//!
//! `service_started` and `service_healthy` wait until the dependency's
//! Service answers on its first TCP port (a Service only routes to ready
//! pods, so with a health check this is "healthy"); the image is
//! `--wait-image` (busybox by default). `service_completed_successfully`
//! waits for the dependency's Job to complete with `kubectl wait`, which
//! needs a ServiceAccount allowed to read Jobs: a Role and RoleBinding for
//! it are part of the export when any service waits for a Job.

use berth_compose::{Condition, Service};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, SeccompProfile, SecurityContext, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

use crate::context::{Ctx, Kind, component};
use crate::model::Object;
use crate::names::dns_label;
use crate::network::first_tcp;

/// A pod's wait containers, and whether one of them reads Jobs.
#[derive(Debug, Default)]
pub(crate) struct Waits {
    pub containers: Vec<Container>,
    pub reads_jobs: bool,
}

/// The ServiceAccount (and Role, RoleBinding) of pods that wait for Jobs.
pub(crate) fn account_name(ctx: &Ctx<'_>) -> String {
    dns_label(&format!("{}-wait-for-jobs", ctx.instance), 63, false)
}

/// The wait containers of a service, in the order of its `depends_on`.
pub(crate) fn waits(ctx: &mut Ctx<'_>, s: &Service) -> Waits {
    let mut out = Waits::default();
    for (dep, d) in &s.depends_on {
        let place = format!("services.{}.depends_on.{dep}", s.name);
        let Some(target) = ctx.project.services.get(dep) else {
            continue;
        };
        if d.restart {
            ctx.warn(
                &place,
                format!(
                    "restart: true is left out: Kubernetes does not restart {} when {dep} restarts",
                    s.name
                ),
            );
        }
        if !d.required {
            continue;
        }
        let dep_name = ctx.name(dep);
        let container_name = dns_label(&format!("wait-for-{dep_name}"), 63, false);
        if d.condition == Condition::ServiceCompletedSuccessfully && ctx.kind(dep) == Kind::Job {
            out.reads_jobs = true;
            out.containers.push(Container {
                name: container_name,
                image: Some(ctx.options.kubectl_image()),
                args: Some(vec![
                    "wait".into(),
                    "--for=condition=complete".into(),
                    format!("job/{dep_name}"),
                    "--timeout=-1s".into(),
                ]),
                security_context: Some(restricted(false)),
                ..Container::default()
            });
            continue;
        }
        let Some(port) = first_tcp(target) else {
            // No port at all is said once, at the dependency.
            if !crate::network::declared(target).is_empty() {
                ctx.warn(
                    &place,
                    format!(
                        "{dep} declares no TCP port to wait for: {} starts without waiting for it",
                        s.name
                    ),
                );
            }
            continue;
        };
        let script = format!(
            "until nc -z -w 2 {dep_name} {port}; do echo waiting for {dep_name}:{port}; sleep 1; done"
        );
        out.containers.push(Container {
            name: container_name,
            image: Some(ctx.options.wait_image.clone()),
            command: Some(vec!["sh".into(), "-c".into(), script]),
            security_context: Some(restricted(true)),
            ..Container::default()
        });
    }
    out
}

/// What the restricted Pod Security Standard asks of a container: the
/// wait containers run anywhere.
fn restricted(read_only: bool) -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            add: None,
            drop: Some(vec!["ALL".into()]),
        }),
        read_only_root_filesystem: read_only.then_some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(65534),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..SecurityContext::default()
    }
}

/// The ServiceAccount, Role and RoleBinding that let pods read Jobs.
pub(crate) fn job_reader(ctx: &Ctx<'_>) -> Vec<Object> {
    let name = account_name(ctx);
    let meta = ctx.meta(&name, &ctx.instance, component::WAIT);
    vec![
        Object::from(ServiceAccount {
            metadata: meta.clone(),
            ..ServiceAccount::default()
        }),
        Object::from(Role {
            metadata: meta.clone(),
            rules: Some(vec![PolicyRule {
                api_groups: Some(vec!["batch".into()]),
                resources: Some(vec!["jobs".into()]),
                verbs: vec!["get".into(), "list".into(), "watch".into()],
                ..PolicyRule::default()
            }]),
        }),
        Object::from(RoleBinding {
            metadata: meta,
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "Role".into(),
                name: name.clone(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name,
                namespace: ctx.options.namespace.clone(),
                api_group: None,
            }]),
        }),
    ]
}
