//! A service to its workload: a Deployment, a StatefulSet (named volumes
//! and one replica, or `x-berth.stateful: true`) or a Job (a one-shot
//! service others wait for), with `deploy` mapped to what each has.

use berth_compose::{RestartPolicy, Service, UpdateConfig};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment, StatefulSet,
    StatefulSetSpec,
};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{EnvFromSource, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::context::{Ctx, Kind, component};
use crate::model::Object;
use crate::pod::{Pod, pod};
use crate::units::seconds;

fn replicas(s: &Service) -> i32 {
    i32::try_from(s.replicas()).unwrap_or(i32::MAX)
}

/// The workload of a service.
pub(crate) fn workload(
    ctx: &mut Ctx<'_>,
    s: &Service,
    env_from: Option<EnvFromSource>,
    config_hash: Option<String>,
) -> Object {
    let kind = ctx.kind(&s.name);
    deploy_warnings(ctx, s, kind);
    let Pod {
        template,
        claim_templates,
    } = pod(ctx, s, env_from, config_hash);
    let name = ctx.name(&s.name);
    let component = if kind == Kind::Job {
        component::JOB
    } else {
        component::SERVER
    };
    let mut metadata = ctx.meta(&name, &name, component);
    if let Some(deploy_labels) = s
        .deploy
        .as_ref()
        .map(|d| &d.labels)
        .filter(|l| !l.is_empty())
    {
        let split = crate::labels::split(
            ctx,
            &format!("services.{}.deploy.labels", s.name),
            deploy_labels,
        );
        if let Some(labels) = metadata.labels.as_mut() {
            labels.extend(split.labels);
        }
        metadata.annotations = (!split.annotations.is_empty()).then_some(split.annotations);
    }
    let selector = ctx.selector(&name);
    match kind {
        Kind::Deployment => deployment(s, metadata, selector, template),
        Kind::StatefulSet => {
            let has_service = !crate::network::declared(s).is_empty();
            Object::from(StatefulSet {
                metadata,
                spec: StatefulSetSpec {
                    replicas: Some(replicas(s)),
                    selector,
                    service_name: has_service.then_some(name),
                    template,
                    volume_claim_templates: (!claim_templates.is_empty())
                        .then_some(claim_templates),
                    ..StatefulSetSpec::default()
                },
                ..StatefulSet::default()
            })
        }
        Kind::Job => {
            let n = replicas(s).max(1);
            Object::from(Job {
                metadata,
                spec: Some(JobSpec {
                    backoff_limit: backoff_limit(s),
                    completions: (n > 1).then_some(n),
                    parallelism: (n > 1).then_some(n),
                    template,
                    ..JobSpec::default()
                }),
                ..Job::default()
            })
        }
    }
}

fn deployment(
    s: &Service,
    metadata: ObjectMeta,
    selector: LabelSelector,
    template: PodTemplateSpec,
) -> Object {
    let update = s.deploy.as_ref().and_then(|d| d.update_config.as_ref());
    let min_ready = update.and_then(|u| u.delay).map(seconds);
    Object::from(Deployment {
        metadata,
        spec: DeploymentSpec {
            replicas: Some(replicas(s)),
            selector,
            template,
            strategy: update.map(strategy),
            min_ready_seconds: min_ready,
            // The API wants it above minReadySeconds.
            progress_deadline_seconds: s
                .settings
                .deploy_timeout
                .map(|t| seconds(t).max(min_ready.unwrap_or(0).saturating_add(1))),
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    })
}

/// `restart: no` fails the Job at the first failure, `on-failure:N`
/// retries N times; otherwise Kubernetes' default (6).
fn backoff_limit(s: &Service) -> Option<i32> {
    match s.restart_policy() {
        RestartPolicy::No => Some(0),
        RestartPolicy::OnFailure {
            max_retries: Some(n),
        }
        | RestartPolicy::Always {
            max_retries: Some(n),
        } => Some(i32::try_from(n).unwrap_or(i32::MAX)),
        _ => None,
    }
}

/// `update_config`: `parallelism` pods at a time (0: all), new ones first
/// with `order: start-first`, old ones first otherwise (Compose's default).
fn strategy(u: &UpdateConfig) -> DeploymentStrategy {
    let at_once = match u.parallelism {
        Some(0) => IntOrString::String("100%".into()),
        Some(n) => IntOrString::Int(i32::try_from(n).unwrap_or(i32::MAX)),
        None => IntOrString::Int(1),
    };
    let zero = IntOrString::Int(0);
    let (max_surge, max_unavailable) = if u.order.as_deref() == Some("start-first") {
        (at_once, zero)
    } else {
        (zero, at_once)
    };
    DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(max_surge),
            max_unavailable: Some(max_unavailable),
        }),
    }
}

/// What of `deploy` the workload cannot carry.
fn deploy_warnings(ctx: &mut Ctx<'_>, s: &Service, kind: Kind) {
    let Some(d) = &s.deploy else { return };
    let place = |f: &str| format!("services.{}.deploy.{f}", s.name);
    if d.mode.as_deref() == Some("global") {
        ctx.warn(place("mode"), "global is left out: exported with the replica count; a DaemonSet runs one pod per node");
    }
    if d.placement.is_some() {
        ctx.warn(
            place("placement"),
            "left out: use nodeSelector, affinity or topology spread constraints",
        );
    }
    if d.endpoint_mode.is_some() {
        ctx.warn(
            place("endpoint_mode"),
            "left out: a Service balances over its ready pods",
        );
    }
    if d.rollback_config.is_some() {
        ctx.warn(
            place("rollback_config"),
            "left out: roll back with kubectl rollout undo",
        );
    }
    if let Some(u) = &d.update_config {
        if kind != Kind::Deployment {
            ctx.warn(
                place("update_config"),
                "left out: only a Deployment's rollout is configured",
            );
        } else {
            for (field, set) in [
                ("failure_action", u.failure_action.is_some()),
                ("monitor", u.monitor.is_some()),
                ("max_failure_ratio", u.max_failure_ratio.is_some()),
            ] {
                if set {
                    ctx.warn(
                        place(&format!("update_config.{field}")),
                        "left out: a rollout that makes no progress is reported (progressDeadlineSeconds), not rolled back",
                    );
                }
            }
        }
    }
    if let Some(rp) = &d.restart_policy {
        if kind != Kind::Job && rp.condition.as_deref().is_some_and(|c| c != "any") {
            ctx.warn(
                place("restart_policy"),
                "left out: the pods of a Deployment or StatefulSet always restart",
            );
        }
        if rp.delay.is_some() || rp.window.is_some() {
            ctx.warn(
                place("restart_policy"),
                "delay and window are left out: the kubelet backs off by itself",
            );
        }
    }
}
