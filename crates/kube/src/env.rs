//! `environment` and `env_file` (already merged by the loader, with
//! Compose precedence) to one ConfigMap per service, read with `envFrom`;
//! and the variables berth itself gives native processes.

use std::collections::BTreeMap;

use berth_compose::Service;
use k8s_openapi::api::core::v1::{ConfigMap, ConfigMapEnvSource, EnvFromSource, EnvVar};

use crate::context::{Ctx, component, env_map_name};
use crate::model::Object;
use crate::names::{is_data_key, volume_var};

/// Words in a variable name that say its value is a secret.
const SECRET_WORDS: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "SECRET",
    "TOKEN",
    "API_KEY",
    "APIKEY",
    "PRIVATE_KEY",
    "ACCESS_KEY",
    "CREDENTIAL",
];

/// The service's environment as a ConfigMap, and how the container reads it.
pub(crate) fn config_map(ctx: &mut Ctx<'_>, s: &Service) -> Option<(Object, EnvFromSource)> {
    let name = ctx.name(&s.name);
    let map_name = env_map_name(&name);
    let place = format!("services.{}.environment", s.name);
    let mut data = BTreeMap::new();
    let mut secret_like = Vec::new();
    for (key, value) in &s.environment {
        let Some(value) = value else {
            ctx.warn(
                format!("{place}.{key}"),
                "declared without a value and not set in the shell or .env: left out",
            );
            continue;
        };
        if !is_data_key(key) {
            ctx.warn(
                format!("{place}.{key}"),
                "not a valid ConfigMap key (letters, digits, '-', '_', '.'): left out",
            );
            continue;
        }
        if looks_secret(key) && !value.is_empty() {
            secret_like.push(key.as_str());
        }
        data.insert(key.clone(), value.clone());
    }
    if !secret_like.is_empty() {
        ctx.warn(
            place,
            format!(
                "{} {} written in plain text to ConfigMap {map_name}; consider Compose \
                 `secrets:` (mounted from a Secret)",
                secret_like.join(", "),
                if secret_like.len() == 1 {
                    "looks like a secret and is"
                } else {
                    "look like secrets and are"
                },
            ),
        );
    }
    if data.is_empty() {
        return None;
    }
    let map = ConfigMap {
        metadata: ctx.meta(&map_name, &name, component::CONFIG),
        data: Some(data),
        ..ConfigMap::default()
    };
    let from = EnvFromSource {
        config_map_ref: Some(ConfigMapEnvSource {
            name: map_name,
            optional: None,
        }),
        ..EnvFromSource::default()
    };
    Some((Object::from(map), from))
}

fn looks_secret(key: &str) -> bool {
    let upper = key.to_ascii_uppercase();
    !upper.ends_with("_FILE") && SECRET_WORDS.iter().any(|w| upper.contains(w))
}

/// What berth gives a native process and its program may rely on:
/// `PORT` (the first declared port), `PORT_<n>`, `BERTH_SERVICE`,
/// `BERTH_PROJECT` and `BERTH_VOLUME_<TARGET>` for each mount.
pub(crate) fn native_variables(
    ctx: &Ctx<'_>,
    s: &Service,
    ports: &[u16],
    mount_targets: &[String],
) -> Vec<EnvVar> {
    let var = |name: String, value: String| EnvVar {
        name,
        value: Some(value),
        ..EnvVar::default()
    };
    let mut out = Vec::new();
    if let Some(first) = ports.first() {
        out.push(var("PORT".into(), first.to_string()));
    }
    for p in ports {
        out.push(var(format!("PORT_{p}"), p.to_string()));
    }
    out.push(var("BERTH_SERVICE".into(), s.name.clone()));
    out.push(var("BERTH_PROJECT".into(), ctx.project.name.clone()));
    for target in mount_targets {
        out.push(var(volume_var(target), target.clone()));
    }
    out.retain(|v| !s.environment.contains_key(&v.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_names() {
        for key in [
            "POSTGRES_PASSWORD",
            "jwt_secret",
            "OPENAI_API_KEY",
            "GITHUB_TOKEN",
            "DB_PASSWD",
        ] {
            assert!(looks_secret(key), "{key}");
        }
        for key in [
            "MYSQL_ROOT_PASSWORD_FILE",
            "DATABASE_HOST",
            "PORT",
            "KEYCLOAK_URL",
        ] {
            assert!(!looks_secret(key), "{key}");
        }
    }
}
