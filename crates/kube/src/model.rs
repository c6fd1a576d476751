//! What an export produces: Kubernetes objects (k8s-openapi types),
//! warnings for what does not carry over, errors that stop it.

use std::fmt;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{Metadata, Resource};
use serde::Serialize;

/// The result of an export: objects in the order to apply them, and
/// everything that did not carry over exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    pub objects: Vec<Object>,
    pub warnings: Vec<Warning>,
}

/// Something of the file that Kubernetes does not do the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Where it is in the file: `services.web.volumes[0]`, `x-berth.proxy.routes[2]`.
    pub place: String,
    /// What happens instead, and what to do.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.message)
    }
}

/// Why there is no export.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Services that run natively (a `command`, no `image` or `build`) and
    /// have no image for the cluster.
    #[error(
        "{} no image to run in Kubernetes: {}",
        if .0.len() == 1 { "this service runs natively and has" } else { "these services run natively and have" },
        .0.join(", ")
    )]
    NeedsImage(Vec<String>),
    /// `--namespace` is not a valid namespace name.
    #[error("namespace {0:?} is not valid: {1}")]
    Namespace(String, String),
    /// `--image` names a service the project does not have.
    #[error("--image names {0:?}, which is not a service of the project")]
    UnknownService(String),
}

impl Error {
    /// What to do about it, indented by two spaces, one or more lines.
    pub fn help(&self) -> String {
        match self {
            Error::NeedsImage(services) => {
                let first = services.first().map_or("SERVICE", String::as_str);
                format!(
                    "  build an image that contains the program (and the files it reads), push it,\n  \
                     and name it under each service:\n    \
                     services:\n      {first}:\n        x-berth:\n          \
                     kube: {{image: registry.example.com/{first}:1.0}}\n  \
                     or on the command line: --image {first}=registry.example.com/{first}:1.0"
                )
            }
            Error::Namespace(..) => {
                "  a namespace is a DNS label: lowercase letters, digits and '-', at most 63".into()
            }
            Error::UnknownService(_) => {
                "  write --image SERVICE=IMAGE with a service of the file".into()
            }
        }
    }
}

/// One Kubernetes object (boxed: they differ much in size).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Object {
    ServiceAccount(Box<ServiceAccount>),
    Role(Box<Role>),
    RoleBinding(Box<RoleBinding>),
    ConfigMap(Box<ConfigMap>),
    PersistentVolumeClaim(Box<PersistentVolumeClaim>),
    Service(Box<Service>),
    Deployment(Box<Deployment>),
    StatefulSet(Box<StatefulSet>),
    Job(Box<Job>),
    Ingress(Box<Ingress>),
}

macro_rules! from_kind {
    ($($kind:ident),*) => {
        $(impl From<$kind> for Object {
            fn from(o: $kind) -> Object {
                Object::$kind(Box::new(o))
            }
        })*
    };
}

from_kind!(
    ServiceAccount,
    Role,
    RoleBinding,
    ConfigMap,
    PersistentVolumeClaim,
    Service,
    Deployment,
    StatefulSet,
    Job,
    Ingress
);

impl Object {
    /// `Deployment`, `Service`…
    pub fn kind(&self) -> &'static str {
        match self {
            Object::ServiceAccount(_) => ServiceAccount::KIND,
            Object::Role(_) => Role::KIND,
            Object::RoleBinding(_) => RoleBinding::KIND,
            Object::ConfigMap(_) => ConfigMap::KIND,
            Object::PersistentVolumeClaim(_) => PersistentVolumeClaim::KIND,
            Object::Service(_) => Service::KIND,
            Object::Deployment(_) => Deployment::KIND,
            Object::StatefulSet(_) => StatefulSet::KIND,
            Object::Job(_) => Job::KIND,
            Object::Ingress(_) => Ingress::KIND,
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::ServiceAccount(o) => o.metadata(),
            Object::Role(o) => o.metadata(),
            Object::RoleBinding(o) => o.metadata(),
            Object::ConfigMap(o) => o.metadata(),
            Object::PersistentVolumeClaim(o) => o.metadata(),
            Object::Service(o) => o.metadata(),
            Object::Deployment(o) => o.metadata(),
            Object::StatefulSet(o) => o.metadata(),
            Object::Job(o) => o.metadata(),
            Object::Ingress(o) => o.metadata(),
        }
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }
}
