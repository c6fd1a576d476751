//! Validation of each file against the Compose Specification's JSON schema.
//!
//! The schema (embedded, see `schema/NOTICE.md`) is the same one the
//! reference loader uses, so "unknown key" and "wrong type" mean what they
//! mean for `docker compose`. berth's own `x-berth` settings are spliced in
//! from `schema/x-berth.json`. Every violation becomes one diagnostic at the
//! place of the offending key or value; `oneOf` failures are narrowed to the
//! alternative the user evidently meant.

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::LocationSegment;
use jsonschema::{ValidationError, Validator};
use serde_json::Value as Json;

use crate::diag::{Diagnostic, DiagnosticKind, Sink, Span};
use crate::yaml::{Node, Tag, Value, with_article};

const COMPOSE_SCHEMA: &str = include_str!("../schema/compose-spec.json");
const XBERTH_SCHEMA: &str = include_str!("../schema/x-berth.json");

struct Schema {
    validator: Validator,
    root: Json,
}

fn schema() -> Result<&'static Schema, String> {
    static SCHEMA: OnceLock<Result<Schema, String>> = OnceLock::new();
    SCHEMA.get_or_init(build).as_ref().map_err(|e| e.clone())
}

fn build() -> Result<Schema, String> {
    let mut root: Json = serde_json::from_str(COMPOSE_SCHEMA).map_err(|e| e.to_string())?;
    let xberth: Json = serde_json::from_str(XBERTH_SCHEMA).map_err(|e| e.to_string())?;
    let defs = root
        .get_mut("definitions")
        .and_then(Json::as_object_mut)
        .ok_or("compose schema has no definitions")?;
    for (name, def) in xberth.as_object().into_iter().flatten() {
        defs.insert(format!("x-berth-{name}"), def.clone());
    }
    let service_props = defs
        .get_mut("service")
        .and_then(|s| s.get_mut("properties"))
        .and_then(Json::as_object_mut)
        .ok_or("compose schema has no service properties")?;
    service_props.insert(
        "x-berth".into(),
        serde_json::json!({"$ref": "#/definitions/x-berth-service"}),
    );
    let top_props = root
        .get_mut("properties")
        .and_then(Json::as_object_mut)
        .ok_or("compose schema has no properties")?;
    top_props.insert(
        "x-berth".into(),
        serde_json::json!({"$ref": "#/definitions/x-berth-project"}),
    );
    let validator = jsonschema::draft7::new(&root).map_err(|e| e.to_string())?;
    Ok(Schema { validator, root })
}

/// Validates one file's tree (after interpolation, before anything else).
/// Values tagged `!reset` are left out: they only remove things.
///
/// Returns the paths of the offending keys and values, so the loader can
/// drop them and go on to report what later stages find too.
pub(crate) fn validate(doc: &Node, sink: &mut Sink) -> Vec<Vec<String>> {
    let schema = match schema() {
        Ok(s) => s,
        Err(e) => {
            sink.error(
                DiagnosticKind::InvalidValue,
                Span::NONE,
                format!("internal error: the embedded Compose schema does not load: {e}"),
            );
            return Vec::new();
        }
    };
    let instance = validation_view(doc);
    let mut found = Vec::new();
    let mut prune = Vec::new();
    for error in schema.validator.iter_errors(&instance) {
        explain(&error, doc, schema, &mut found, &mut prune);
    }
    found.sort_by_key(|d: &Diagnostic| (d.span.line, d.span.column));
    found.dedup_by(|a, b| a.message == b.message && a.span == b.span);
    for d in found {
        sink.push(d);
    }
    prune
}

/// JSON for validation: like [`Node::to_json`] but without `!reset` values.
fn validation_view(node: &Node) -> Json {
    match &node.value {
        Value::Seq(items) => Json::Array(
            items
                .iter()
                .filter(|i| i.tag != Tag::Reset)
                .map(validation_view)
                .collect(),
        ),
        Value::Map(m) => Json::Object(
            m.iter()
                .filter(|(_, e)| e.value.tag != Tag::Reset)
                .map(|(k, e)| (k.clone(), validation_view(&e.value)))
                .collect(),
        ),
        _ => node.to_json(),
    }
}

fn segments(error: &ValidationError<'_>) -> Vec<String> {
    error
        .instance_path()
        .iter()
        .map(|s| match s {
            LocationSegment::Property(p) => p.to_string(),
            LocationSegment::Index(i) => i.to_string(),
        })
        .collect()
}

/// `services.web.ports[0]` for a path of segments.
pub(crate) fn display_path<S: AsRef<str>>(path: &[S]) -> String {
    let mut out = String::new();
    for s in path {
        let s = s.as_ref();
        if !out.is_empty() && s.parse::<usize>().is_ok() {
            out.push_str(&format!("[{s}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(s);
        }
    }
    if out.is_empty() {
        "the top level".to_string()
    } else {
        out
    }
}

fn explain(
    error: &ValidationError<'_>,
    doc: &Node,
    schema: &Schema,
    out: &mut Vec<Diagnostic>,
    prune: &mut Vec<Vec<String>>,
) {
    let path = segments(error);
    prune_explained(error, &path, prune);
    let at = display_path(&path);
    let span = doc.span_at(&path);
    let found = doc.at(&path);
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            unknown_keys(error, unexpected, (&at, &path, span), doc, schema, out)
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => vec![type_word(&t.to_string())],
                TypeKind::Multiple(set) => set.iter().map(|t| type_word(&t.to_string())).collect(),
            };
            out.push(type_error(&at, span, &expected, found));
        }
        ValidationErrorKind::Required { property } => {
            let name = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_string);
            out.push(Diagnostic::error(
                DiagnosticKind::MissingKey,
                span,
                format!("{at}: missing required key `{name}`"),
            ));
        }
        ValidationErrorKind::Enum { options } => out.push(not_allowed(&at, span, options, found)),
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            one_of(&path, context, doc, schema, out, prune);
        }
        ValidationErrorKind::Minimum { limit } => out.push(Diagnostic::error(
            DiagnosticKind::InvalidValue,
            span,
            format!("{at} must be greater than or equal to {limit}"),
        )),
        ValidationErrorKind::Maximum { limit } => out.push(Diagnostic::error(
            DiagnosticKind::InvalidValue,
            span,
            format!("{at} must be less than or equal to {limit}"),
        )),
        ValidationErrorKind::UniqueItems => out.push(Diagnostic::error(
            DiagnosticKind::InvalidValue,
            span,
            format!("{at} must not contain the same item twice"),
        )),
        ValidationErrorKind::Pattern { pattern } => out.push(Diagnostic::error(
            DiagnosticKind::InvalidValue,
            span,
            format!(
                "{at}: {} does not match the pattern {pattern}",
                found.map_or_else(String::new, |n| show(&n.to_json()))
            ),
        )),
        _ => out.push(Diagnostic::error(
            DiagnosticKind::InvalidValue,
            span,
            format!("{at}: {}", error.masked()),
        )),
    }
}

/// Marks the paths this error explains, so errors below them are not
/// reported again.
fn prune_explained(error: &ValidationError<'_>, path: &[String], prune: &mut Vec<Vec<String>>) {
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            for key in unexpected {
                let mut p = path.to_vec();
                p.push(key.clone());
                prune.push(p);
            }
        }
        ValidationErrorKind::Required { .. }
        | ValidationErrorKind::OneOfNotValid { .. }
        | ValidationErrorKind::AnyOf { .. } => {}
        _ => prune.push(path.to_vec()),
    }
}

/// Unknown keys, each with the nearest known one.
fn unknown_keys(
    error: &ValidationError<'_>,
    unexpected: &[String],
    (at, path, span): (&str, &[String], Span),
    doc: &Node,
    schema: &Schema,
    out: &mut Vec<Diagnostic>,
) {
    for key in unexpected {
        let key_span = doc.key_span_at(path, key).unwrap_or(span);
        let mut d = Diagnostic::error(
            DiagnosticKind::UnknownKey,
            key_span,
            format!("{at}: unknown key `{key}`"),
        );
        let known = known_properties(schema, error);
        if let Some(near) = closest(key, &known) {
            d = d.with_help(format!("did you mean `{near}`?"));
        } else if !known.is_empty() {
            d = d.with_help(
                "keys berth does not know must start with `x-` to be kept as extensions",
            );
        }
        out.push(d);
    }
}

/// A value outside an enumeration, with the values allowed.
fn not_allowed(at: &str, span: Span, options: &Json, found: Option<&Node>) -> Diagnostic {
    let allowed: Vec<String> = options
        .as_array()
        .map(|a| a.iter().map(show).collect())
        .unwrap_or_default();
    Diagnostic::error(
        DiagnosticKind::InvalidValue,
        span,
        format!(
            "{at}: {} is not allowed; use one of {}",
            found.map_or_else(|| "this value".into(), |n| show(&n.to_json())),
            allowed.join(", ")
        ),
    )
}

/// A `oneOf`/`anyOf` failure: when the value has the type of exactly the
/// alternatives that failed deeper down, report those deeper errors (the
/// user meant that form); otherwise say which types are accepted.
fn one_of(
    path: &[String],
    context: &[Vec<ValidationError<'static>>],
    doc: &Node,
    schema: &Schema,
    out: &mut Vec<Diagnostic>,
    prune: &mut Vec<Vec<String>>,
) {
    let same_place_type_error = |e: &ValidationError<'_>| {
        matches!(e.kind(), ValidationErrorKind::Type { .. }) && segments(e).len() == path.len()
    };
    let mut expected: Vec<String> = Vec::new();
    let mut meant: Vec<&Vec<ValidationError<'static>>> = Vec::new();
    for branch in context {
        if branch.iter().any(same_place_type_error) {
            for e in branch {
                if let ValidationErrorKind::Type { kind } = e.kind() {
                    match kind {
                        TypeKind::Single(t) => expected.push(type_word(&t.to_string())),
                        TypeKind::Multiple(set) => {
                            expected.extend(set.iter().map(|t| type_word(&t.to_string())));
                        }
                    }
                }
            }
        } else {
            meant.push(branch);
        }
    }
    if meant.len() == 1 {
        for e in meant[0] {
            explain(e, doc, schema, out, prune);
        }
        return;
    }
    prune.push(path.to_vec());
    let at = display_path(path);
    let span = doc.span_at(path);
    if meant.is_empty() {
        expected.dedup();
        out.push(type_error(&at, span, &expected, doc.at(path)));
    } else {
        // Several forms fit the type; report the errors of the first form.
        for e in meant[0] {
            explain(e, doc, schema, out, &mut Vec::new());
        }
    }
}

fn type_error(at: &str, span: Span, expected: &[String], found: Option<&Node>) -> Diagnostic {
    let mut words: Vec<&str> = Vec::new();
    for w in expected {
        if !words.contains(&w.as_str()) {
            words.push(w);
        }
    }
    let nullable = words.len() > 1 && words.contains(&"null");
    words.retain(|w| !nullable || *w != "null");
    let list = match words.as_slice() {
        [] => "another type".to_string(),
        [one] => with_article(one),
        [init @ .., last] => format!("{} or {last}", with_article(&init.join(", "))),
    };
    let empty = if nullable { " (or empty)" } else { "" };
    let found = found.map_or_else(|| "nothing".to_string(), |n| with_article(n.type_name()));
    Diagnostic::error(
        DiagnosticKind::InvalidType,
        span,
        format!("{at} must be {list}{empty}, not {found}"),
    )
}

fn type_word(json_type: &str) -> String {
    match json_type {
        "object" => "mapping",
        "array" => "sequence",
        "integer" => "integer",
        "number" => "number",
        "boolean" => "boolean",
        "null" => "null",
        "string" => "string",
        other => other,
    }
    .to_string()
}

fn show(v: &Json) -> String {
    match v {
        Json::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}

/// The property names the schema allows where an `additionalProperties`
/// error was raised, for "did you mean".
fn known_properties(schema: &Schema, error: &ValidationError<'_>) -> Vec<String> {
    // The schema path ends in `/additionalProperties`; its parent object
    // holds `properties`. Resolve through the root by JSON pointer.
    let pointer = error.schema_path().as_str().to_string();
    let parent = pointer.trim_end_matches("/additionalProperties");
    let mut node = &schema.root;
    for seg in parent.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        node = match node {
            Json::Object(m) => match m.get(&seg) {
                Some(n) => n,
                None => return Vec::new(),
            },
            Json::Array(a) => match seg.parse::<usize>().ok().and_then(|i| a.get(i)) {
                Some(n) => n,
                None => return Vec::new(),
            },
            _ => return Vec::new(),
        };
        // Follow `$ref`s on the way.
        while let Some(r) = node.get("$ref").and_then(Json::as_str) {
            match r.strip_prefix('#').and_then(|p| schema.root.pointer(p)) {
                Some(target) => node = target,
                None => break,
            }
        }
    }
    node.get("properties")
        .and_then(Json::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// The known name closest to a misspelt one, if close enough to be a typo.
pub(crate) fn closest<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    let limit = if name.len() <= 4 { 1 } else { 2 };
    known
        .iter()
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::FileId;
    use crate::yaml::{ParseLimits, parse_documents};

    fn check(text: &str) -> Vec<Diagnostic> {
        let doc = parse_documents(text, FileId(0), ParseLimits::default())
            .unwrap()
            .remove(0);
        let mut sink = Sink::default();
        validate(&doc, &mut sink);
        sink.errors
    }

    #[test]
    fn the_embedded_schema_compiles() {
        assert!(schema().is_ok(), "{:?}", schema().err());
    }

    #[test]
    fn unknown_keys_point_at_the_key_and_suggest_a_fix() {
        let errs = check("services:\n  web:\n    imagee: nginx\n    command: x\n");
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].kind, DiagnosticKind::UnknownKey);
        assert_eq!((errs[0].span.line, errs[0].span.column), (3, 5));
        assert_eq!(errs[0].message, "services.web: unknown key `imagee`");
        assert_eq!(errs[0].help.as_deref(), Some("did you mean `image`?"));
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let errs = check(
            "services:\n  a:\n    image: [x]\n    bogus: 1\n  b:\n    ports: {a: 1}\nhelicopters: 3\n",
        );
        let kinds: Vec<_> = errs.iter().map(|e| (e.kind.clone(), e.span.line)).collect();
        assert_eq!(
            kinds,
            vec![
                (DiagnosticKind::InvalidType, 3),
                (DiagnosticKind::UnknownKey, 4),
                (DiagnosticKind::InvalidType, 6),
                (DiagnosticKind::UnknownKey, 7),
            ],
            "{errs:#?}"
        );
        assert_eq!(
            errs[0].message,
            "services.a.image must be a string, not a sequence"
        );
    }

    #[test]
    fn one_of_narrows_to_the_form_the_user_meant() {
        let errs =
            check("services:\n  a:\n    ports:\n      - target: 80\n        publishd: 8080\n");
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!(
            errs[0].message,
            "services.a.ports[0]: unknown key `publishd`"
        );
        assert_eq!(errs[0].help.as_deref(), Some("did you mean `published`?"));
    }

    #[test]
    fn x_berth_settings_are_validated() {
        let errs = check(
            "x-berth:\n  proxy:\n    listen: [\":8080\"]\n    routs: []\nservices:\n  a:\n    x-berth:\n      bind: sideways\n",
        );
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert_eq!(errs[0].message, "x-berth.proxy: unknown key `routs`");
        assert!(
            errs[1].message.contains("\"sideways\" is not allowed"),
            "{}",
            errs[1].message
        );
    }

    #[test]
    fn reset_values_are_not_validated() {
        let errs = check("services:\n  a:\n    ports: !reset null\n");
        assert!(errs.is_empty(), "{errs:#?}");
    }
}
