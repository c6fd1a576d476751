//! The normalized model: what every other part of berth consumes.
//!
//! Short forms are gone (ports are [`PortConfig`]s, `depends_on` entries
//! carry their condition, commands are argv vectors), defaults are filled in,
//! relative paths are resolved against the project directory, and
//! interpolation is done. Fields berth does not interpret are kept, in
//! canonical form, in each service's `other` map so `berth config` prints the
//! whole file like `docker compose config` does.

use std::path::PathBuf;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

pub use crate::confine::{
    ALL_CAPABILITIES, CAPABILITIES, Confinement, Limits, SwapLimit, ULIMITS, Ulimit, capability,
};
pub use crate::ports::PortConfig;
pub use crate::units::{ByteSize, Duration};
pub use crate::values::{
    Expose, HealthTest, Invalid, LogRotation, PortRange, Protocol, RestartPolicy, Signal, SignalId,
};
pub use crate::volumes::{ServiceVolumeConfig, VolumeKind, target_word, volume_var};
pub use crate::xberth::{
    Bind, BuildCommand, KubeSettings, LoadBalancing, ProjectSettings, ProxySettings, ProxyTimeouts,
    Ready, ReadyProbe, Route, RouteTarget, RuntimeChoice, RuntimeKind, ServiceSettings,
    ServiceType,
};

/// A loaded Compose project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    pub name: String,
    /// The project directory: relative paths in the files are resolved
    /// against it, and services run in it unless `working_dir` says otherwise.
    #[serde(skip)]
    pub directory: PathBuf,
    /// The files the project was loaded from, in merge order.
    #[serde(skip)]
    pub files: Vec<PathBuf>,
    /// Active services (profiles applied), in file order.
    pub services: IndexMap<String, Service>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub networks: IndexMap<String, Json>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub volumes: IndexMap<String, Json>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub secrets: IndexMap<String, Json>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub configs: IndexMap<String, Json>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub models: IndexMap<String, Json>,
    /// Top-level `x-*` keys as written (after interpolation), `x-berth` included.
    #[serde(flatten)]
    pub extensions: IndexMap<String, Json>,
    /// berth's own settings (`x-berth` at the top level), typed.
    #[serde(skip)]
    pub settings: ProjectSettings,
    /// Services left out because none of their profiles is enabled.
    #[serde(skip)]
    pub disabled_services: IndexMap<String, Service>,
    /// The variables interpolation saw (shell environment over `.env`).
    #[serde(skip)]
    pub environment: IndexMap<String, String>,
}

impl Project {
    /// What runs `service`: `forced` if given, else the run's
    /// (`up --runtime`, [`crate::ProjectSettings::forced_runtime`]), else
    /// its `x-berth.runtime`, else the project's; `auto` is Docker for a
    /// service with `image` or `build`, native otherwise.
    pub fn runtime_of(
        &self,
        service: &Service,
        forced: Option<crate::xberth::RuntimeChoice>,
    ) -> crate::xberth::RuntimeKind {
        use crate::xberth::{RuntimeChoice, RuntimeKind};
        let chosen = [
            forced.or(self.settings.forced_runtime),
            service.settings.runtime,
        ]
        .into_iter()
        .flatten()
        .find(|c| *c != RuntimeChoice::Auto)
        .unwrap_or(self.settings.runtime);
        match chosen {
            RuntimeChoice::Native => RuntimeKind::Native,
            RuntimeChoice::Docker => RuntimeKind::Docker,
            RuntimeChoice::Auto
                if service.image.is_some() || service.other.contains_key("build") =>
            {
                RuntimeKind::Docker
            }
            RuntimeChoice::Auto => RuntimeKind::Native,
        }
    }

    /// Services in an order where every service comes after the services it
    /// depends on (stable: file order among independent services).
    pub fn start_order(&self) -> Vec<&str> {
        let mut done: Vec<&str> = Vec::with_capacity(self.services.len());
        let mut visiting: Vec<&str> = Vec::new();
        fn visit<'a>(
            p: &'a Project,
            name: &'a str,
            done: &mut Vec<&'a str>,
            visiting: &mut Vec<&'a str>,
        ) {
            if done.contains(&name) || visiting.contains(&name) {
                return;
            }
            visiting.push(name);
            if let Some(s) = p.services.get(name) {
                for dep in s.depends_on.keys() {
                    if p.services.contains_key(dep) {
                        visit(p, dep, done, visiting);
                    }
                }
            }
            visiting.retain(|v| *v != name);
            done.push(name);
        }
        for name in self.services.keys() {
            visit(self, name, &mut done, &mut visiting);
        }
        done
    }

    /// Keeps only the named services and what they depend on, directly
    /// or not (`berth up SERVICE…`).
    pub fn retain_with_dependencies(&mut self, names: &[String]) {
        let mut keep: Vec<String> = Vec::new();
        let mut todo: Vec<String> = names.to_vec();
        while let Some(n) = todo.pop() {
            if keep.contains(&n) {
                continue;
            }
            if let Some(s) = self.services.get(&n) {
                todo.extend(s.depends_on.keys().cloned());
            }
            keep.push(n);
        }
        self.services.retain(|k, _| keep.contains(k));
    }

    /// The name of a named volume on disk (`name:` or `<project>_<key>`).
    pub fn volume_name(&self, key: &str) -> String {
        self.volumes
            .get(key)
            .and_then(|v| v.get("name"))
            .and_then(Json::as_str)
            .map_or_else(|| format!("{}_{key}", self.name), str::to_string)
    }
}

/// One service, normalized.
///
/// Deserializing ignores keys not listed in [`TYPED_SERVICE_KEYS`]; the
/// loader keeps those in `other`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Service {
    #[serde(skip)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// The command as argv; `None` when not set, `Some([])` when cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub depends_on: IndexMap<String, Dependency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
    /// `env_file` contents overlaid with `environment`; `None` is a variable
    /// declared without a value that the environment does not define.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub environment: IndexMap<String, Option<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_file: Vec<EnvFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<Expose>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub labels: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortConfig>,
    /// `restart:` as written (see [`Service::restart_policy`] for the
    /// effective policy).
    #[serde(default)]
    pub restart: RestartPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
    #[serde(default = "default_grace")]
    pub stop_grace_period: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<Signal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<ServiceVolumeConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// berth's own settings for this service (`x-berth`), typed. The raw
    /// value is printed from `other` like every `x-*` key.
    #[serde(skip)]
    pub settings: ServiceSettings,
    /// `ulimits`, `security_opt`, `oom_score_adj` as the native runtime
    /// applies them (the keys themselves stay in `other`).
    #[serde(skip)]
    pub confinement: Confinement,
    /// Every other key, in canonical form, `x-*` keys included.
    #[serde(skip)]
    pub other: IndexMap<String, Json>,
}

/// Keys of a service that [`Service`] types; all others go to `other`.
pub(crate) const TYPED_SERVICE_KEYS: &[&str] = &[
    "profiles",
    "command",
    "entrypoint",
    "depends_on",
    "deploy",
    "environment",
    "env_file",
    "expose",
    "healthcheck",
    "image",
    "labels",
    "logging",
    "network_mode",
    "ports",
    "restart",
    "scale",
    "stop_grace_period",
    "stop_signal",
    "user",
    "volumes",
    "working_dir",
];

fn default_grace() -> Duration {
    Duration(std::time::Duration::from_secs(10))
}

impl Service {
    /// The strings of a list under one of its other keys (`cap_add`,
    /// `dns_search`…); empty when it is absent or not a list.
    pub fn strings(&self, key: &str) -> Vec<String> {
        self.other
            .get(key)
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    }

    /// How many replicas to run: `deploy.replicas`, else `scale`, else 1.
    pub fn replicas(&self) -> u32 {
        self.deploy
            .as_ref()
            .and_then(|d| d.replicas)
            .or(self.scale)
            .unwrap_or(1)
    }

    /// The effective restart policy: `deploy.restart_policy` when given
    /// (as Compose does), else `restart`.
    pub fn restart_policy(&self) -> RestartPolicy {
        if let Some(rp) = self.deploy.as_ref().and_then(|d| d.restart_policy.as_ref()) {
            let max = rp.max_attempts;
            return match rp.condition.as_deref() {
                Some("none") => RestartPolicy::No,
                Some("on-failure") => RestartPolicy::OnFailure { max_retries: max },
                _ => RestartPolicy::Always { max_retries: max },
            };
        }
        self.restart
    }

    /// The argv to run: `entrypoint` followed by `command`.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = self.entrypoint.clone().unwrap_or_default();
        argv.extend(self.command.clone().unwrap_or_default());
        argv
    }
}

/// One `depends_on` entry in long form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    pub condition: Condition,
    #[serde(default = "yes")]
    pub required: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restart: bool,
}

fn yes() -> bool {
    true
}

/// What a dependent waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    ServiceStarted,
    ServiceHealthy,
    ServiceCompletedSuccessfully,
}

/// One `env_file` entry in long form, `path` resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvFile {
    pub path: String,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

fn is_true(b: &bool) -> bool {
    *b
}

/// A `healthcheck`, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    #[serde(default, skip_serializing_if = "HealthTest::is_inherit")]
    pub test: HealthTest,
    #[serde(default = "thirty_seconds")]
    pub timeout: Duration,
    #[serde(default = "thirty_seconds")]
    pub interval: Duration,
    #[serde(default = "three")]
    pub retries: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<Duration>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable: bool,
}

fn thirty_seconds() -> Duration {
    Duration(std::time::Duration::from_secs(30))
}

fn three() -> u32 {
    3
}

impl HealthCheck {
    /// Whether this health check actually probes anything.
    pub fn is_enabled(&self) -> bool {
        !self.disable && self.test.is_probe()
    }
}

/// `logging`: berth honours `options.max-size` and `options.max-file`
/// (typed in `rotation`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "LoggingText")]
pub struct Logging {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub options: IndexMap<String, String>,
    #[serde(skip)]
    pub rotation: LogRotation,
}

/// `logging` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoggingText {
    #[serde(default)]
    driver: Option<String>,
    #[serde(default)]
    options: IndexMap<String, String>,
}

impl TryFrom<LoggingText> for Logging {
    type Error = String;

    fn try_from(l: LoggingText) -> Result<Logging, String> {
        let rotation = LogRotation::from_options(&l.options)
            .map_err(|(key, e)| format!("options.{key}: {e}"))?;
        Ok(Logging {
            driver: l.driver,
            options: l.options,
            rotation,
        })
    }
}

/// `deploy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub labels: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_config: Option<UpdateConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_config: Option<UpdateConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<DeployRestartPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_mode: Option<String>,
}

/// `deploy.update_config` / `deploy.rollback_config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failure_ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
}

/// `deploy.resources`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservations: Option<Resource>,
}

/// Limits or reservations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generic_resources: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Json>,
}

/// `deploy.restart_policy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRestartPolicy {
    /// `none`, `on-failure` or `any` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key the loader routes to the typed fields must be one: a key
    /// listed but not typed would vanish silently.
    #[test]
    fn typed_service_keys_are_the_typed_fields() {
        let full = Service {
            profiles: vec!["p".into()],
            command: Some(vec![]),
            entrypoint: Some(vec![]),
            depends_on: IndexMap::from([(
                "d".to_string(),
                Dependency {
                    condition: Condition::ServiceStarted,
                    required: true,
                    restart: false,
                },
            )]),
            deploy: Some(Deploy {
                mode: None,
                replicas: Some(1),
                labels: IndexMap::new(),
                update_config: None,
                rollback_config: None,
                resources: None,
                restart_policy: None,
                placement: None,
                endpoint_mode: None,
            }),
            environment: IndexMap::from([("A".to_string(), None)]),
            env_file: vec![EnvFile {
                path: "p".into(),
                required: true,
                format: None,
            }],
            expose: vec!["1".parse().unwrap()],
            healthcheck: Some(HealthCheck {
                test: HealthTest::Inherit,
                timeout: thirty_seconds(),
                interval: thirty_seconds(),
                retries: 3,
                start_period: None,
                start_interval: None,
                disable: false,
            }),
            image: Some("i".into()),
            labels: IndexMap::from([("l".to_string(), "v".to_string())]),
            logging: Some(Logging {
                driver: None,
                options: IndexMap::new(),
                rotation: LogRotation::default(),
            }),
            network_mode: Some("host".into()),
            ports: vec![crate::ports::parse_port_spec("80").unwrap().remove(0)],
            restart: RestartPolicy::No,
            scale: Some(1),
            stop_grace_period: default_grace(),
            stop_signal: Some("SIGTERM".parse().unwrap()),
            user: Some("u".into()),
            volumes: vec![crate::volumes::parse_volume_spec("/a:/b").unwrap()],
            working_dir: Some("/w".into()),
            ..Service::default()
        };
        let json = serde_json::to_value(&full).unwrap();
        let mut serialized: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        serialized.sort_unstable();
        let mut listed: Vec<&str> = TYPED_SERVICE_KEYS.to_vec();
        listed.sort_unstable();
        assert_eq!(serialized, listed);
    }
}
