//! Compose `labels` (free text) to Kubernetes labels, whose keys and values
//! have a syntax, and annotations, which take any value.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde_json::Value as Json;

use crate::context::Ctx;
use crate::names::{is_label_key, is_label_value};

/// Labels and annotations, sorted.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Split {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// A label whose key and value are valid label syntax stays a label;
/// another valid key becomes an annotation; an invalid key is a warning.
/// The standard `app.kubernetes.io/` labels are berth's (they select pods).
pub(crate) fn split(ctx: &mut Ctx<'_>, place: &str, labels: &IndexMap<String, String>) -> Split {
    let mut out = Split::default();
    for (key, value) in labels {
        if key.starts_with("app.kubernetes.io/") {
            ctx.warn(
                format!("{place}.{key}"),
                "left out: berth sets the app.kubernetes.io/ labels (they select the pods)",
            );
        } else if !is_label_key(key) {
            ctx.warn(
                format!("{place}.{key}"),
                "not a valid Kubernetes label or annotation key: left out",
            );
        } else if is_label_value(value) {
            out.labels.insert(key.clone(), value.clone());
        } else {
            out.annotations.insert(key.clone(), value.clone());
        }
    }
    out
}

/// Compose `annotations`: annotations as they are, valid keys only.
pub(crate) fn annotations(
    ctx: &mut Ctx<'_>,
    place: &str,
    value: Option<&Json>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(map) = value.and_then(Json::as_object) else {
        return out;
    };
    for (key, value) in map {
        if !is_label_key(key) {
            ctx.warn(
                format!("{place}.{key}"),
                "not a valid Kubernetes annotation key: left out",
            );
            continue;
        }
        let value = match value {
            Json::String(s) => s.clone(),
            Json::Null => String::new(),
            other => other.to_string(),
        };
        out.insert(key.clone(), value);
    }
    out
}
