//! What every mapping rule reads: the project, the options, the names
//! given to everything, which workload each service becomes; and where
//! warnings are collected.

use std::collections::{BTreeMap, HashMap, HashSet};

use berth_compose::{Condition, Project, Service, VolumeKind};
use indexmap::IndexMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::model::Warning;
use crate::names::{Family, label_value};
use crate::options::Options;

/// The workload a service becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Deployment,
    /// Named volumes and one replica, or `x-berth.stateful: true`.
    StatefulSet,
    /// A one-shot service: others wait for it to complete.
    Job,
}

/// What a component label says an object is for.
pub(crate) mod component {
    pub const SERVER: &str = "server";
    pub const JOB: &str = "job";
    pub const CONFIG: &str = "config";
    pub const STORAGE: &str = "storage";
    pub const EDGE: &str = "edge";
    pub const WAIT: &str = "wait";
}

pub(crate) struct Ctx<'a> {
    pub project: &'a Project,
    pub options: &'a Options,
    /// Service names: workloads, Services, containers.
    pub services: Family,
    /// Named volumes: PersistentVolumeClaims.
    pub volumes: Family,
    /// Top-level `configs`: ConfigMaps (apart from the `-env` ones).
    pub configs: Family,
    /// Top-level `secrets`: Secrets.
    pub secrets: Family,
    pub kinds: IndexMap<String, Kind>,
    /// The services mounting each named volume, in file order.
    pub volume_users: HashMap<String, Vec<String>>,
    /// `app.kubernetes.io/instance` and `part-of`: the project.
    pub instance: String,
    pub warnings: Vec<Warning>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(project: &'a Project, options: &'a Options) -> Ctx<'a> {
        let none = HashSet::new();
        let services = Family::new(project.services.keys().map(String::as_str), true, &none);
        let env_maps: HashSet<String> = services.iter().map(|(_, n)| env_map_name(n)).collect();
        let awaited: HashSet<&str> = project
            .services
            .values()
            .flat_map(|s| &s.depends_on)
            .filter(|(_, d)| d.condition == Condition::ServiceCompletedSuccessfully)
            .map(|(dep, _)| dep.as_str())
            .collect();
        let kinds = project
            .services
            .iter()
            .map(|(name, s)| (name.clone(), kind_of(s, awaited.contains(name.as_str()))))
            .collect();
        let mut volume_users: HashMap<String, Vec<String>> = HashMap::new();
        for s in project.services.values() {
            for v in &s.volumes {
                if let (VolumeKind::Volume, Some(key)) = (v.kind, &v.source) {
                    let users = volume_users.entry(key.clone()).or_default();
                    if !users.contains(&s.name) {
                        users.push(s.name.clone());
                    }
                }
            }
        }
        Ctx {
            project,
            options,
            volumes: Family::new(project.volumes.keys().map(String::as_str), false, &none),
            configs: Family::new(project.configs.keys().map(String::as_str), false, &env_maps),
            secrets: Family::new(project.secrets.keys().map(String::as_str), false, &none),
            services,
            kinds,
            volume_users,
            instance: label_value(&project.name),
            warnings: Vec::new(),
        }
    }

    pub(crate) fn warn(&mut self, place: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Warning {
            place: place.into(),
            message: message.into(),
        });
    }

    pub(crate) fn kind(&self, service: &str) -> Kind {
        self.kinds.get(service).copied().unwrap_or(Kind::Deployment)
    }

    /// The Kubernetes name of a service.
    pub(crate) fn name(&self, service: &str) -> String {
        self.services.get(service)
    }

    /// The labels every object carries; `app` is the service (or volume,
    /// config, project) it belongs to.
    pub(crate) fn labels(&self, app: &str, component: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), label_value(app)),
            (
                "app.kubernetes.io/instance".to_string(),
                self.instance.clone(),
            ),
            (
                "app.kubernetes.io/component".to_string(),
                component.to_string(),
            ),
            (
                "app.kubernetes.io/part-of".to_string(),
                self.instance.clone(),
            ),
            (
                "app.kubernetes.io/managed-by".to_string(),
                "berth".to_string(),
            ),
        ])
    }

    /// What selects a service's pods: stable whatever else changes.
    pub(crate) fn selector_labels(&self, app: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), label_value(app)),
            (
                "app.kubernetes.io/instance".to_string(),
                self.instance.clone(),
            ),
        ])
    }

    pub(crate) fn selector(&self, app: &str) -> LabelSelector {
        LabelSelector {
            match_labels: Some(self.selector_labels(app)),
            ..LabelSelector::default()
        }
    }

    /// Metadata of a namespaced object.
    pub(crate) fn meta(&self, name: &str, app: &str, component: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_string()),
            namespace: self.options.namespace.clone(),
            labels: Some(self.labels(app, component)),
            ..ObjectMeta::default()
        }
    }
}

/// The ConfigMap holding a service's environment.
pub(crate) fn env_map_name(service_name: &str) -> String {
    format!("{service_name}-env")
}

/// A service others wait for with `service_completed_successfully`
/// (`awaited`), or deployed as a job (`deploy.mode: replicated-job` or
/// `global-job`), is a Job.
fn kind_of(service: &Service, awaited: bool) -> Kind {
    let mode = service.deploy.as_ref().and_then(|d| d.mode.as_deref());
    let named_volumes = service
        .volumes
        .iter()
        .any(|v| v.kind == VolumeKind::Volume && v.source.is_some());
    if awaited || matches!(mode, Some("replicated-job" | "global-job")) {
        Kind::Job
    } else if service.settings.stateful || (named_volumes && service.replicas() == 1) {
        Kind::StatefulSet
    } else {
        Kind::Deployment
    }
}
