//! Objects to text: one YAML stream, a JSON `List`, or one file per object
//! with a `kustomization.yaml` listing them. Deterministic: the same
//! project gives the same bytes.

use serde_json::Value as Json;

use crate::model::Object;

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Yaml,
    Json,
}

impl Format {
    /// The file extension of the format.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Yaml => "yaml",
            Format::Json => "json",
        }
    }
}

/// Why objects could not be rendered (a serializer failing: a bug).
#[derive(Debug, thiserror::Error)]
#[error("cannot render {kind} {name}: {message}")]
pub struct RenderError {
    kind: &'static str,
    name: String,
    message: String,
}

fn to_json(o: &Object) -> Result<Json, RenderError> {
    serde_json::to_value(o).map_err(|e| RenderError {
        kind: o.kind(),
        name: o.name().to_string(),
        message: e.to_string(),
    })
}

/// One object as a YAML document (no `---`).
///
/// # Errors
/// When the serializer fails.
pub fn yaml(o: &Object) -> Result<String, RenderError> {
    serde_saphyr::to_string(&to_json(o)?).map_err(|e| RenderError {
        kind: o.kind(),
        name: o.name().to_string(),
        message: e.to_string(),
    })
}

/// One object as pretty JSON with a final newline.
///
/// # Errors
/// When the serializer fails.
pub fn json(o: &Object) -> Result<String, RenderError> {
    let value = to_json(o)?;
    serde_json::to_string_pretty(&value)
        .map(|s| s + "\n")
        .map_err(|e| RenderError {
            kind: o.kind(),
            name: o.name().to_string(),
            message: e.to_string(),
        })
}

/// Every object in one stream: YAML documents separated by `---`, or a
/// JSON `v1` `List` (what `kubectl apply -f` reads).
///
/// # Errors
/// When the serializer fails.
pub fn stream(objects: &[Object], format: Format) -> Result<String, RenderError> {
    match format {
        Format::Yaml => {
            let mut out = String::new();
            for o in objects {
                out.push_str("---\n");
                out.push_str(&yaml(o)?);
            }
            Ok(out)
        }
        Format::Json => {
            let items = objects.iter().map(to_json).collect::<Result<Vec<_>, _>>()?;
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
            serde_json::to_string_pretty(&list)
                .map(|s| s + "\n")
                .map_err(|e| RenderError {
                    kind: "List",
                    name: String::new(),
                    message: e.to_string(),
                })
        }
    }
}

/// The file an object is written to: `<kind>-<name>.<ext>`, lowercase.
pub fn file_name(o: &Object, format: Format) -> String {
    format!(
        "{}-{}.{}",
        o.kind().to_ascii_lowercase(),
        o.name(),
        format.extension()
    )
}

/// The first line of the `kustomization.yaml` berth writes: how it knows
/// the files it listed are its own to replace.
pub const KUSTOMIZATION_HEADER: &str =
    "# Written by `berth export kubernetes`; edit the Compose file and export again.";

/// One file per object and `kustomization.yaml` listing them in order,
/// as (file name, content).
///
/// # Errors
/// When the serializer fails.
pub fn files(objects: &[Object], format: Format) -> Result<Vec<(String, String)>, RenderError> {
    let mut out = Vec::with_capacity(objects.len() + 1);
    for o in objects {
        let text = match format {
            Format::Yaml => yaml(o)?,
            Format::Json => json(o)?,
        };
        out.push((file_name(o, format), text));
    }
    let mut k = format!(
        "{KUSTOMIZATION_HEADER}\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
         # Apply in this order: Jobs before what waits for them.\nsortOptions:\n  order: fifo\n"
    );
    if out.is_empty() {
        k.push_str("resources: []\n");
    } else {
        k.push_str("resources:\n");
        for (name, _) in &out {
            k.push_str("  - ");
            k.push_str(name);
            k.push('\n');
        }
    }
    out.push(("kustomization.yaml".to_string(), k));
    Ok(out)
}

/// The files listed by a `kustomization.yaml` berth wrote (empty for any
/// other file): those an export may replace or remove.
pub fn listed_files(kustomization: &str) -> Vec<String> {
    if !kustomization.starts_with(KUSTOMIZATION_HEADER) {
        return Vec::new();
    }
    kustomization
        .lines()
        .skip_while(|l| !l.starts_with("resources:"))
        .skip(1)
        .map_while(|l| l.strip_prefix("  - "))
        .filter(|name| !name.contains('/') && !name.starts_with('.'))
        .map(str::to_string)
        .collect()
}
