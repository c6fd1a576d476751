//! Merging canonical trees: later files over earlier ones, and a service
//! over the one it `extends`.
//!
//! The Compose rules: mappings merge key by key, sequences append, scalars
//! are replaced; commands and health-check tests are replaced whole;
//! ports, volumes, mounts, env files and the like stay unique by their key
//! (the later entry wins in the earlier one's place); logging options merge
//! only when both sides use the same driver. `!reset` removes what earlier
//! files set, `!override` replaces it instead of merging.

use crate::diag::{Diagnostic, DiagnosticKind, Sink};
use crate::schema::display_path;
use crate::yaml::{Map, Node, Tag, Value};

/// Merges `over` into `base` (both top-level documents).
pub(crate) fn merge_documents(base: &mut Node, over: Node, sink: &mut Sink) {
    let mut path = Vec::new();
    let merged = merge(
        &mut path,
        Some(std::mem::replace(base, Node::map(over.span))),
        over,
        sink,
    );
    if let Some(m) = merged {
        *base = m;
    }
}

/// Merges a service definition over the one it extends.
pub(crate) fn merge_service(name: &str, base: Node, over: Node, sink: &mut Sink) -> Node {
    let mut path = vec!["services".to_string(), name.to_string()];
    let span = over.span;
    merge(&mut path, Some(base), over, sink).unwrap_or_else(|| Node::map(span))
}

/// Drops nodes tagged `!reset` (nothing to reset below a new value) and
/// clears `!override` tags.
pub(crate) fn strip_tags(node: &mut Node) {
    node.tag = Tag::None;
    match &mut node.value {
        Value::Seq(items) => {
            items.retain(|i| i.tag != Tag::Reset);
            items.iter_mut().for_each(strip_tags);
        }
        Value::Map(m) => {
            m.retain(|_, e| e.value.tag != Tag::Reset);
            m.values_mut().for_each(|e| strip_tags(&mut e.value));
        }
        _ => {}
    }
}

fn matches(path: &[String], pattern: &[&str]) -> bool {
    path.len() == pattern.len() && path.iter().zip(pattern).all(|(p, q)| *q == "*" || p == q)
}

fn merge(
    path: &mut Vec<String>,
    base: Option<Node>,
    mut over: Node,
    sink: &mut Sink,
) -> Option<Node> {
    match over.tag {
        Tag::Reset => return None,
        Tag::Override => {
            strip_tags(&mut over);
            return Some(over);
        }
        Tag::None => {}
    }
    let Some(mut base) = base else {
        strip_tags(&mut over);
        return Some(over);
    };
    let replace_whole = [
        &["services", "*", "command"][..],
        &["services", "*", "entrypoint"],
        &["services", "*", "healthcheck", "test"],
        &["services", "*", "x-berth", "build"],
    ];
    if replace_whole.iter().any(|p| matches(path, p)) {
        strip_tags(&mut over);
        return Some(over);
    }
    if over.is_null() {
        // `key:` with nothing adds nothing (as in the reference).
        return Some(base);
    }
    if matches(path, &["services", "*", "logging"]) {
        let driver = |n: &Node| n.get("driver").and_then(Node::scalar_string);
        if let (Some(a), Some(b)) = (driver(&base), driver(&over))
            && a != b
        {
            strip_tags(&mut over);
            return Some(over);
        }
    }
    match (&mut base.value, over.value) {
        (Value::Map(b), Value::Map(o)) => {
            merge_maps(path, b, o, sink);
            Some(base)
        }
        (Value::Seq(b), Value::Seq(o)) => {
            let key = unique_key(path);
            for mut item in o {
                if item.tag == Tag::Reset {
                    continue;
                }
                strip_tags(&mut item);
                let existing = key.and_then(|k| {
                    let ik = k(&item);
                    ik.as_ref()?;
                    b.iter().position(|e| k(e) == ik)
                });
                match existing {
                    Some(i) => b[i] = item,
                    None => b.push(item),
                }
            }
            Some(base)
        }
        (Value::Map(_) | Value::Seq(_), other) => {
            mismatch(path, &base, over.span, &other, sink);
            Some(base)
        }
        (_, other) => {
            over.value = other;
            strip_tags(&mut over);
            Some(over)
        }
    }
}

fn merge_maps(path: &mut Vec<String>, base: &mut Map, over: Map, sink: &mut Sink) {
    for (key, entry) in over {
        path.push(key.clone());
        let existing = base.get(&key).map(|e| e.value.clone());
        match merge(path, existing, entry.value, sink) {
            Some(value) => {
                if let Some(slot) = base.get_mut(&key) {
                    slot.value = value;
                } else {
                    base.insert(
                        key,
                        crate::yaml::Entry {
                            key_span: entry.key_span,
                            value,
                        },
                    );
                }
            }
            None => {
                base.shift_remove(&key);
            }
        }
        path.pop();
    }
}

fn mismatch(path: &[String], base: &Node, span: crate::diag::Span, other: &Value, sink: &mut Sink) {
    sink.push(Diagnostic::error(
        DiagnosticKind::InvalidType,
        span,
        format!(
            "{}: cannot merge {} over {} defined at line {}",
            display_path(path),
            crate::yaml::with_article(other.type_name()),
            crate::yaml::with_article(base.type_name()),
            base.span.line
        ),
    ));
}

type KeyFn = fn(&Node) -> Option<String>;

/// For sequences whose entries are unique by some key, how to compute it.
fn unique_key(path: &[String]) -> Option<KeyFn> {
    let by_value: KeyFn = Node::scalar_string;
    let by_target: KeyFn = |n| n.get("target").and_then(Node::scalar_string);
    let table: [(&[&str], KeyFn); 17] = [
        (&["services", "*", "ports"], port_key),
        (&["services", "*", "volumes"], by_target),
        (&["services", "*", "devices"], by_target),
        (&["services", "*", "secrets"], |n| {
            mount_key(n, "/run/secrets")
        }),
        (&["services", "*", "configs"], |n| mount_key(n, "")),
        (&["services", "*", "env_file"], |n| {
            n.get("path").and_then(Node::scalar_string)
        }),
        (&["services", "*", "expose"], by_value),
        (&["services", "*", "dns"], by_value),
        (&["services", "*", "dns_opt"], by_value),
        (&["services", "*", "dns_search"], by_value),
        (&["services", "*", "tmpfs"], by_value),
        (&["services", "*", "cap_add"], by_value),
        (&["services", "*", "cap_drop"], by_value),
        (&["services", "*", "profiles"], by_value),
        (&["services", "*", "links"], by_value),
        (&["services", "*", "extra_hosts"], by_value),
        (&["services", "*", "label_file"], by_value),
    ];
    table
        .iter()
        .find(|(p, _)| matches(path, p))
        .map(|(_, k)| *k)
}

fn port_key(n: &Node) -> Option<String> {
    let get = |k: &str| n.get(k).and_then(Node::scalar_string);
    Some(format!(
        "{}:{}:{}/{}",
        get("host_ip").unwrap_or_else(|| "0.0.0.0".into()),
        get("published").unwrap_or_default(),
        get("target")?,
        get("protocol").unwrap_or_else(|| "tcp".into())
    ))
}

fn mount_key(n: &Node, default_dir: &str) -> Option<String> {
    n.get("target").and_then(Node::scalar_string).or_else(|| {
        Some(format!(
            "{default_dir}/{}",
            n.get("source")?.scalar_string()?
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::FileId;
    use crate::loader::canon::canonicalize;
    use crate::yaml::{ParseLimits, parse_documents};

    fn doc(text: &str) -> Node {
        let mut d = parse_documents(text, FileId(0), ParseLimits::default())
            .unwrap()
            .remove(0);
        let mut sink = Sink::default();
        canonicalize(&mut d, &mut sink);
        assert!(sink.errors.is_empty(), "{:?}", sink.errors);
        d
    }

    fn merged(a: &str, b: &str) -> serde_json::Value {
        let mut base = doc(a);
        let mut sink = Sink::default();
        merge_documents(&mut base, doc(b), &mut sink);
        assert!(sink.errors.is_empty(), "{:?}", sink.errors);
        base.to_json()
    }

    #[test]
    fn mappings_merge_and_scalars_replace() {
        let m = merged(
            "services:\n  web:\n    image: a\n    environment: [A=1, B=2]\n",
            "services:\n  web:\n    image: b\n    environment:\n      B: 3\n      C: 4\n",
        );
        assert_eq!(m["services"]["web"]["image"], "b");
        assert_eq!(
            m["services"]["web"]["environment"],
            serde_json::json!({"A": "1", "B": "3", "C": "4"})
        );
    }

    #[test]
    fn commands_are_replaced_not_appended() {
        let m = merged(
            "services:\n  web:\n    command: a b\n",
            "services:\n  web:\n    command: [c]\n",
        );
        assert_eq!(m["services"]["web"]["command"], serde_json::json!(["c"]));
    }

    #[test]
    fn ports_stay_unique_and_volumes_by_target() {
        let m = merged(
            "services:\n  web:\n    ports: [\"80:80\", \"443:443\"]\n    volumes: [\"./a:/data\", \"./b:/b\"]\n",
            "services:\n  web:\n    ports: [\"80:80\", \"8080:8080\"]\n    volumes: [\"./c:/data\"]\n",
        );
        let ports = m["services"]["web"]["ports"].as_array().unwrap();
        assert_eq!(ports.len(), 3);
        let vols = m["services"]["web"]["volumes"].as_array().unwrap();
        assert_eq!(vols.len(), 2);
        assert_eq!(vols[0]["source"], "./c");
    }

    #[test]
    fn reset_removes_and_override_replaces() {
        let m = merged(
            "services:\n  web:\n    ports: [\"80:80\"]\n    networks: [a, b]\n    environment: {A: 1}\n",
            "services:\n  web:\n    ports: !reset []\n    networks: !override [c]\n    environment: !reset {}\n",
        );
        let web = &m["services"]["web"];
        assert!(web.get("ports").is_none());
        assert!(web.get("environment").is_none());
        assert_eq!(web["networks"], serde_json::json!({"c": null}));
    }

    #[test]
    fn logging_options_merge_only_with_the_same_driver() {
        let m = merged(
            "services:\n  a:\n    logging: {driver: json-file, options: {max-size: 1m}}\n  b:\n    logging: {driver: json-file, options: {max-size: 1m}}\n",
            "services:\n  a:\n    logging: {options: {max-file: '2'}}\n  b:\n    logging: {driver: syslog, options: {tag: x}}\n",
        );
        assert_eq!(
            m["services"]["a"]["logging"]["options"],
            serde_json::json!({"max-size": "1m", "max-file": "2"})
        );
        assert_eq!(
            m["services"]["b"]["logging"]["options"],
            serde_json::json!({"tag": "x"})
        );
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let mut base = doc("services:\n  web:\n    environment: {A: 1}\n");
        let mut sink = Sink::default();
        let over = doc("services:\n  web:\n    environment: []\n    image: x\n");
        merge_documents(&mut base, over, &mut sink);
        // list_to_map made both mappings; a real mismatch:
        let mut base = doc("x-a: {k: 1}\n");
        merge_documents(&mut base, doc("x-a: [1]\n"), &mut sink);
        assert_eq!(sink.errors.len(), 1, "{:?}", sink.errors);
        assert!(
            sink.errors[0]
                .message
                .contains("cannot merge a sequence over a mapping")
        );
    }
}
