//! Objects to text: one YAML stream, a JSON `List`, or one file per object
//! with a `kustomization.yaml` listing them. Deterministic: the same
//! project gives the same bytes.

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

/// One object as a YAML document (no `---`).
///
/// # Errors
/// When the serializer fails.
pub fn yaml(o: &Object) -> Result<String, RenderError> {
    serde_saphyr::to_string(o).map_err(|e| RenderError {
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
    serde_json::to_string_pretty(o)
        .map(|s| s + "\n")
        .map_err(|e| RenderError {
            kind: o.kind(),
            name: o.name().to_string(),
            message: e.to_string(),
        })
}

/// `f` over every item, on a few threads when there are many (rendering
/// 2,000 objects takes tens of milliseconds); results in order.
fn map_in_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    if threads < 2 || items.len() < 64 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                let work = move || part.iter().map(f).collect::<Vec<R>>();
                (part, std::thread::Builder::new().spawn_scoped(scope, work))
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|(part, handle)| match handle.map(|h| h.join()) {
                Ok(Ok(results)) => results,
                // No thread (or it panicked, which rendering does not): here.
                _ => part.iter().map(f).collect(),
            })
            .collect()
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
            let docs = map_in_parallel(objects, yaml);
            let mut out = String::with_capacity(
                docs.iter()
                    .map(|d| d.as_ref().map_or(0, |d| d.len() + 4))
                    .sum(),
            );
            for doc in docs {
                out.push_str("---\n");
                out.push_str(&doc?);
            }
            Ok(out)
        }
        Format::Json => {
            /// `kubectl`'s `v1` `List`, the objects serialized as they are.
            #[derive(serde::Serialize)]
            struct List<'a> {
                #[serde(rename = "apiVersion")]
                api_version: &'static str,
                kind: &'static str,
                items: &'a [Object],
            }
            let list = List {
                api_version: "v1",
                kind: "List",
                items: objects,
            };
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
    let rendered = map_in_parallel(objects, |o| match format {
        Format::Yaml => yaml(o),
        Format::Json => json(o),
    });
    let mut out = Vec::with_capacity(objects.len() + 1);
    for (o, text) in objects.iter().zip(rendered) {
        out.push((file_name(o, format), text?));
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
