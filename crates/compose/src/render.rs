//! The model as `berth config` prints it: like `docker compose config`,
//! keys in a stable order, secrets' values never shown.

use serde_json::{Map, Value as Json};

use crate::model::{Project, Service};

/// The project as a JSON value in output order.
pub fn to_json(project: &Project) -> Json {
    let mut out = Map::new();
    out.insert("name".into(), Json::String(project.name.clone()));
    let services: Map<String, Json> = project
        .services
        .iter()
        .map(|(name, s)| (name.clone(), service(s)))
        .collect();
    if !services.is_empty() {
        out.insert("services".into(), Json::Object(services));
    }
    for (key, section) in [
        ("networks", &project.networks),
        ("volumes", &project.volumes),
        ("secrets", &project.secrets),
        ("configs", &project.configs),
        ("models", &project.models),
    ] {
        if !section.is_empty() {
            let mut items: Map<String, Json> = Map::new();
            for (k, v) in section {
                items.insert(k.clone(), redact(key, v));
            }
            out.insert(key.into(), Json::Object(items));
        }
    }
    for (k, v) in &project.extensions {
        out.insert(k.clone(), v.clone());
    }
    Json::Object(out)
}

/// A secret defined by `environment:` names a variable; its value never
/// appears in the output. (`content:` of configs is not secret.)
fn redact(section: &str, v: &Json) -> Json {
    let mut v = v.clone();
    if section == "secrets"
        && let Some(obj) = v.as_object_mut()
        && obj.contains_key("content")
    {
        obj.insert("content".into(), Json::String("<redacted>".into()));
    }
    v
}

/// One service: typed fields and the rest, keys sorted like the reference
/// prints them (alphabetically, `x-*` last).
fn service(s: &Service) -> Json {
    let mut fields: Vec<(String, Json)> = Vec::new();
    if let Ok(Json::Object(typed)) = serde_json::to_value(s) {
        fields.extend(typed);
    }
    for (k, v) in &s.other {
        fields.push((k.clone(), v.clone()));
    }
    fields.sort_by(|(a, _), (b, _)| (a.starts_with("x-"), a).cmp(&(b.starts_with("x-"), b)));
    Json::Object(fields.into_iter().collect())
}
