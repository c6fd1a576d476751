//! What changes between the project a stack runs and the file as it is
//! now: per service keep, replace (with the keys that changed), start,
//! stop, scale; and whether the edge proxy's settings changed.
//!
//! A service is compared by its configuration hash: the SHA-256 of its
//! normalized form with keys sorted, leaving out what does not change the
//! processes (replica count, profiles, `depends_on`), as `docker compose`
//! keeps it in `com.docker.compose.config-hash`.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

use crate::model::{Project, Service};

/// Keys that do not change a service's processes.
const NOT_HASHED: &[&str] = &["scale", "profiles", "depends_on"];

/// `x-berth` keys only other verbs read (`berth export kubernetes`,
/// `berth backup`): changing them replaces no process.
const EXPORT_ONLY: &[&str] = &["kube", "stateful", "backup"];

/// The service's normalized configuration as compared: typed keys and
/// every other key (`x-berth` included), sorted, without [`NOT_HASHED`],
/// `deploy.replicas` and the export's own `x-berth` keys.
pub fn service_config(service: &Service) -> Map<String, Json> {
    let mut map = match serde_json::to_value(service) {
        Ok(Json::Object(map)) => map,
        _ => Map::new(),
    };
    for (k, v) in &service.other {
        map.insert(k.clone(), v.clone());
    }
    for k in NOT_HASHED {
        map.remove(*k);
    }
    if let Some(Json::Object(x)) = map.get_mut("x-berth") {
        for k in EXPORT_ONLY {
            x.remove(*k);
        }
        if x.is_empty() {
            map.remove("x-berth");
        }
    }
    if let Some(Json::Object(deploy)) = map.get_mut("deploy") {
        deploy.remove("replicas");
        if deploy.is_empty() {
            map.remove("deploy");
        }
    }
    match sorted(Json::Object(map)) {
        Json::Object(map) => map,
        _ => Map::new(),
    }
}

/// The hex SHA-256 of [`service_config`].
pub fn config_hash(service: &Service) -> String {
    sha256_hex(Json::Object(service_config(service)).to_string().as_bytes())
}

/// The hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sorted(value: Json) -> Json {
    match value {
        Json::Object(map) => {
            let mut entries: Vec<(String, Json)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Json::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Json::Array(items) => Json::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// What happens to one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Unchanged: its processes are not touched.
    Keep,
    /// Its configuration changed: replaced replica by replica.
    Replace {
        /// The top-level keys that differ, sorted.
        keys: Vec<String>,
    },
    /// New in the file.
    Start,
    /// Gone from the file.
    Stop,
}

/// One service's change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceChange {
    pub service: String,
    pub action: Action,
    /// Replicas running now and wanted (equal when not scaled).
    pub replicas: (u32, u32),
}

impl ServiceChange {
    /// Whether this touches the service at all.
    pub fn is_change(&self) -> bool {
        self.action != Action::Keep || self.replicas.0 != self.replicas.1
    }
}

/// The change from a running project to the file as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectDiff {
    /// New services in start order, then the ones gone from the file.
    pub services: Vec<ServiceChange>,
    /// `x-berth.proxy` differs.
    pub proxy: bool,
}

impl ProjectDiff {
    /// Whether there is anything to do.
    pub fn is_empty(&self) -> bool {
        !self.proxy && !self.services.iter().any(ServiceChange::is_change)
    }
}

/// Compares the running project (with its replica counts now, which
/// `berth scale` may have changed) with the new one (with the counts
/// wanted, `--scale` applied).
pub fn diff(
    running: &Project,
    replicas_now: &BTreeMap<String, u32>,
    new: &Project,
    replicas_wanted: &BTreeMap<String, u32>,
) -> ProjectDiff {
    let count = |counts: &BTreeMap<String, u32>, name: &str, s: &Service| {
        counts.get(name).copied().unwrap_or_else(|| s.replicas())
    };
    let mut services = Vec::new();
    for name in new.start_order() {
        let s = &new.services[name];
        let wanted = count(replicas_wanted, name, s);
        let (action, now) = match running.services.get(name) {
            None => (Action::Start, 0),
            Some(old) => {
                let keys = changed_keys(&service_config(old), &service_config(s));
                let action = if keys.is_empty() {
                    Action::Keep
                } else {
                    Action::Replace { keys }
                };
                (action, count(replicas_now, name, old))
            }
        };
        services.push(ServiceChange {
            service: name.to_string(),
            action,
            replicas: (now, wanted),
        });
    }
    for (name, old) in &running.services {
        if !new.services.contains_key(name) {
            services.push(ServiceChange {
                service: name.clone(),
                action: Action::Stop,
                replicas: (count(replicas_now, name, old), 0),
            });
        }
    }
    ProjectDiff {
        services,
        proxy: running.settings.proxy != new.settings.proxy,
    }
}

fn changed_keys(old: &Map<String, Json>, new: &Map<String, Json>) -> Vec<String> {
    let mut keys: Vec<String> = old
        .keys()
        .chain(new.keys())
        .filter(|k| old.get(*k) != new.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

impl fmt::Display for ServiceChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (now, wanted) = self.replicas;
        match &self.action {
            Action::Keep if now == wanted => write!(f, "{}: keep", self.service),
            Action::Keep => write!(f, "{}: scale {now} -> {wanted}", self.service),
            Action::Replace { keys } => {
                write!(f, "{}: replace ({} changed)", self.service, keys.join(", "))?;
                if now != wanted {
                    write!(f, ", scale {now} -> {wanted}")?;
                }
                Ok(())
            }
            Action::Start => write!(f, "{}: start ({wanted} replicas)", self.service),
            Action::Stop => write!(f, "{}: stop ({now} replicas)", self.service),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(yaml: &str) -> Project {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("berth-diff-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("compose.yaml"), yaml).unwrap();
        let opts = crate::LoadOptions::new(&dir, Default::default());
        let p = crate::load(&opts)
            .unwrap_or_else(|d| panic!("{}", d.render(false)))
            .project;
        let _ = std::fs::remove_dir_all(&dir);
        p
    }

    const BASE: &str = "name: t\nservices:\n  db:\n    command: [db]\n  api:\n    command: [api]\n    environment: {V: \"1\"}\n    depends_on: [db]\n    deploy: {replicas: 2}\n";

    #[test]
    fn the_same_file_is_nothing_to_do() {
        let (a, b) = (project(BASE), project(BASE));
        let d = diff(&a, &BTreeMap::new(), &b, &BTreeMap::new());
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(
            config_hash(&a.services["api"]),
            config_hash(&b.services["api"])
        );
        let lines: Vec<String> = d.services.iter().map(ToString::to_string).collect();
        assert_eq!(lines, ["db: keep", "api: keep"]);
    }

    #[test]
    fn changes_are_named_per_service() {
        let old = project(BASE);
        let new = project(&format!(
            "{}  cache:\n    command: [cache]\n",
            BASE.replace("V: \"1\"", "V: \"2\"")
                .replace("replicas: 2", "replicas: 3")
                .replace(
                    "  db:\n    command: [db]\n",
                    "  db:\n    command: [db]\n    stop_signal: SIGINT\n"
                )
        ));
        let d = diff(&old, &BTreeMap::new(), &new, &BTreeMap::new());
        let lines: Vec<String> = d.services.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "db: replace (stop_signal changed)",
                "api: replace (environment changed), scale 2 -> 3",
                "cache: start (1 replicas)",
            ]
        );
        let back = diff(&new, &BTreeMap::new(), &old, &BTreeMap::new());
        assert!(
            back.services
                .iter()
                .any(|c| c.to_string() == "cache: stop (1 replicas)")
        );
    }

    #[test]
    fn scaling_alone_replaces_nothing() {
        let old = project(BASE);
        let new = project(&BASE.replace("replicas: 2", "replicas: 4"));
        assert_eq!(
            config_hash(&old.services["api"]),
            config_hash(&new.services["api"])
        );
        let d = diff(
            &old,
            &BTreeMap::from([("api".into(), 3)]),
            &new,
            &BTreeMap::new(),
        );
        assert_eq!(d.services[1].to_string(), "api: scale 3 -> 4");
        assert!(!d.is_empty());
    }

    /// What only the Kubernetes export reads does not restart anything.
    #[test]
    fn export_settings_replace_nothing() {
        let old = project(BASE);
        let new = project(&BASE.replace(
            "deploy: {replicas: 2}",
            "deploy: {replicas: 2}\n    x-berth:\n      stateful: true\n      kube: {image: reg/api:1}",
        ));
        assert!(new.services["api"].settings.stateful);
        assert_eq!(
            config_hash(&old.services["api"]),
            config_hash(&new.services["api"])
        );
    }

    #[test]
    fn proxy_settings_are_compared() {
        let with_proxy = |path: &str| {
            project(&format!(
                "{BASE}    expose: [\"80\"]\nx-berth:\n  proxy:\n    listen: [\"127.0.0.1:0\"]\n    routes: [{{path: {path}, service: api}}]\n"
            ))
        };
        let d = diff(
            &with_proxy("/a"),
            &BTreeMap::new(),
            &with_proxy("/b"),
            &BTreeMap::new(),
        );
        assert!(d.proxy && !d.is_empty());
        let d = diff(
            &with_proxy("/a"),
            &BTreeMap::new(),
            &with_proxy("/a"),
            &BTreeMap::new(),
        );
        assert!(d.is_empty());
    }
}
