//! A service's pod template: its main container, the containers that wait
//! for its dependencies, its volumes, and pod-wide settings.

use berth_compose::Service;
use k8s_openapi::api::core::v1::{EnvFromSource, PersistentVolumeClaim, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::context::{Ctx, Kind, component};
use crate::units::seconds_or_zero;
use crate::{container, files, host, labels, security, storage, wait};

/// A pod template and the claim templates its volumes need (StatefulSets).
#[derive(Debug)]
pub(crate) struct Pod {
    pub template: PodTemplateSpec,
    pub claim_templates: Vec<PersistentVolumeClaim>,
}

/// The pod of a service; `config_hash` changes when its environment or
/// configs do, so that a changed ConfigMap rolls the pods.
pub(crate) fn pod(
    ctx: &mut Ctx<'_>,
    s: &Service,
    env_from: Option<EnvFromSource>,
    config_hash: Option<String>,
) -> Pod {
    let kind = ctx.kind(&s.name);
    let mut mounts = storage::mounts(ctx, s);
    files::mount(ctx, s, &mut mounts);
    let waits = wait::waits(ctx, s);
    let main = container::main(ctx, s, env_from, &mounts);
    let mut spec = PodSpec {
        containers: vec![main],
        init_containers: (!waits.containers.is_empty()).then_some(waits.containers),
        volumes: (!mounts.volumes.is_empty()).then_some(mounts.volumes),
        restart_policy: (kind == Kind::Job).then(|| job_restart_policy(s).to_string()),
        service_account_name: waits.reads_jobs.then(|| wait::account_name(ctx)),
        termination_grace_period_seconds: Some(i64::from(seconds_or_zero(s.stop_grace_period))),
        // Compose injects no `<SERVICE>_PORT=tcp://…` variables; they
        // clash with the programs' own (REDIS_PORT=6379).
        enable_service_links: Some(false),
        security_context: security::pod(ctx, s),
        ..PodSpec::default()
    };
    host::apply(ctx, s, &mut spec);
    let name = ctx.name(&s.name);
    let component = if kind == Kind::Job {
        component::JOB
    } else {
        component::SERVER
    };
    let split = labels::split(ctx, &format!("services.{}.labels", s.name), &s.labels);
    let mut pod_labels = ctx.labels(&name, component);
    pod_labels.extend(split.labels);
    let mut annotations = split.annotations;
    let place = format!("services.{}.annotations", s.name);
    annotations.extend(labels::annotations(ctx, &place, s.other.get("annotations")));
    if let Some(hash) = config_hash {
        annotations.insert("berth/config-hash".into(), hash);
    }
    Pod {
        template: PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(pod_labels),
                annotations: (!annotations.is_empty()).then_some(annotations),
                ..ObjectMeta::default()
            }),
            spec: Some(spec),
        },
        claim_templates: mounts.claim_templates,
    }
}

/// A Job's pods cannot restart `Always`: `restart: no` runs once (as
/// Compose does); any other policy retries on failure.
pub(crate) fn job_restart_policy(s: &Service) -> &'static str {
    match s.restart_policy() {
        berth_compose::RestartPolicy::No => "Never",
        _ => "OnFailure",
    }
}
