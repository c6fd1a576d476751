//! What the file says of each service, for the dashboard's detail panel and
//! dependency graph: runtime, image or command, dependencies with their
//! conditions, replicas, health check, and the environment with the
//! values of secret-looking keys masked (no secret's value ever leaves).

use std::collections::BTreeMap;

use serde::Serialize;

/// What stands in for a secret's value.
pub const MASK: &str = "••••••";

/// The parts of a key that mark it a secret.
const SECRET_WORDS: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "PASS",
    "SECRET",
    "TOKEN",
    "KEY",
    "CREDENTIAL",
    "PRIVATE",
    "AUTH",
    "SESSION",
    "COOKIE",
    "SALT",
    "DSN",
    "CERT",
];

/// Whether `key`'s value must not be shown (`DB_PASSWORD`, `apiKey`,
/// `DATABASE_URL` with a password in it…).
pub fn is_secret(key: &str, value: &str) -> bool {
    let upper = key.to_ascii_uppercase();
    let words: Vec<&str> = upper
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let camel_or_word = SECRET_WORDS.iter().any(|s| {
        words
            .iter()
            .any(|w| w == s || w.ends_with(s) || w.starts_with(s))
    });
    // A URL with credentials in it (postgres://user:pw@host/db).
    let url_with_password = value
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    camel_or_word || url_with_password
}

/// `value`, or the mask.
pub fn shown(key: &str, value: &str) -> String {
    if is_secret(key, value) {
        MASK.to_string()
    } else {
        value.to_string()
    }
}

#[derive(Debug, Serialize)]
pub struct ServiceView {
    pub name: String,
    pub runtime: &'static str,
    pub image: Option<String>,
    pub command: Option<Vec<String>>,
    /// Each dependency and its condition.
    pub depends_on: BTreeMap<String, String>,
    pub replicas: u32,
    pub healthcheck: Option<serde_json::Value>,
    pub ready: Option<serde_json::Value>,
    pub environment: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
pub struct ModelView {
    pub project: String,
    /// In start order.
    pub services: Vec<ServiceView>,
}

/// The dashboard's view of `project` (`inherited`: berth's environment,
/// for `KEY` entries without a value).
pub fn view(project: &berth_compose::Project, inherited: &BTreeMap<String, String>) -> ModelView {
    let services = project
        .start_order()
        .into_iter()
        .filter_map(|name| project.services.get(name))
        .map(|s| ServiceView {
            name: s.name.clone(),
            runtime: project.runtime_of(s, None).as_str(),
            image: s.image.clone(),
            command: s.command.clone(),
            depends_on: s
                .depends_on
                .iter()
                .map(|(d, dep)| {
                    let condition = serde_json::to_value(dep.condition)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    (d.clone(), condition)
                })
                .collect(),
            replicas: s.deploy.as_ref().and_then(|d| d.replicas).unwrap_or(1),
            healthcheck: s
                .healthcheck
                .as_ref()
                .and_then(|h| serde_json::to_value(h).ok()),
            ready: s
                .settings
                .ready
                .as_ref()
                .and_then(|r| serde_json::to_value(r).ok()),
            environment: s
                .environment
                .iter()
                .filter_map(|(k, v)| {
                    let v = v.clone().or_else(|| inherited.get(k).cloned())?;
                    Some((k.clone(), shown(k, &v)))
                })
                .collect(),
        })
        .collect();
    ModelView {
        project: project.name.clone(),
        services,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_keys_and_urls_with_passwords_are_masked() {
        for key in [
            "DB_PASSWORD",
            "POSTGRES_PASSWORD",
            "apiKey",
            "API_KEY",
            "JWT_SECRET",
            "GITHUB_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "SENTRY_DSN",
            "SESSION_SECRET",
        ] {
            assert_eq!(shown(key, "x"), MASK, "{key}");
        }
        assert_eq!(shown("DATABASE_URL", "postgres://app:hunter2@db/app"), MASK);
        for (key, value) in [
            ("PORT", "8000"),
            ("DATABASE_URL", "postgres://db/app"),
            ("API_BASE_URL", "/api"),
            ("LOG_LEVEL", "info"),
        ] {
            assert_eq!(shown(key, value), value, "{key}");
        }
    }
}
