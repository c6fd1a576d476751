//! A YAML tree that remembers where every node came from.
//!
//! The loader works on this tree (interpolation, canonical forms, merging,
//! `extends`) before anything is bound to typed structs, so that every
//! diagnostic, however late, can point at the file, line and column of the
//! value it is about.
//!
//! # Layout
//! - [`parse`]: YAML text -> [`Node`] documents (anchors, aliases with an
//!   expansion budget, merge keys, `!reset`/`!override` tags, duplicate and
//!   non-string keys rejected).
//! - this file: the [`Node`] type, path lookups, conversion to JSON.

mod de;
mod parse;

pub use de::{DeError, NodeDeserializer, from_node};
pub use parse::{ParseLimits, parse_documents};

use indexmap::IndexMap;

use crate::diag::Span;

/// The Compose merge tags a node may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tag {
    #[default]
    None,
    /// `!reset`: remove this value from what earlier files defined.
    Reset,
    /// `!override`: replace what earlier files defined instead of merging.
    Override,
}

/// One YAML node with its place in the source.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
    pub tag: Tag,
}

/// A mapping entry: the key's place and the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key_span: Span,
    pub value: Node,
}

/// An ordered mapping with string keys (Compose allows no other keys).
/// Hashed with FxHash: keys come from a file the user wrote, not from an
/// adversary, and hashing is a good part of the loader's time.
pub type Map = IndexMap<String, Entry, rustc_hash::FxBuildHasher>;

/// The value of a node, resolved with the YAML 1.2 core schema (plus octal
/// integers written with a leading zero, as the Compose reference loader reads
/// them: `mode: 0440`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Map),
}

impl Node {
    /// A node with no tag.
    pub fn new(value: Value, span: Span) -> Node {
        Node {
            value,
            span,
            tag: Tag::None,
        }
    }

    /// A string node.
    pub fn str(s: impl Into<String>, span: Span) -> Node {
        Node::new(Value::Str(s.into()), span)
    }

    /// An empty mapping node.
    pub fn map(span: Span) -> Node {
        Node::new(Value::Map(Map::default()), span)
    }

    pub fn as_map(&self) -> Option<&Map> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_map_mut(&mut self) -> Option<&mut Map> {
        match &mut self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// The value under a key of a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?.get(key).map(|e| &e.value)
    }

    /// The value under a key of a mapping node, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.as_map_mut()?.get_mut(key).map(|e| &mut e.value)
    }

    /// The node at a path of mapping keys and sequence indexes (as strings).
    pub fn at<S: AsRef<str>>(&self, path: &[S]) -> Option<&Node> {
        let mut node = self;
        for segment in path {
            let segment = segment.as_ref();
            node = match &node.value {
                Value::Map(m) => &m.get(segment)?.value,
                Value::Seq(s) => s.get(segment.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// The best place to point at for a path: the node itself, or for a
    /// missing tail, the deepest node that exists.
    pub fn span_at<S: AsRef<str>>(&self, path: &[S]) -> Span {
        let mut node = self;
        for segment in path {
            let segment = segment.as_ref();
            let next = match &node.value {
                Value::Map(m) => m.get(segment).map(|e| &e.value),
                Value::Seq(s) => segment.parse::<usize>().ok().and_then(|i| s.get(i)),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node.span
    }

    /// The span of a key in a mapping at a path (for "unknown key" errors).
    pub fn key_span_at<S: AsRef<str>>(&self, path: &[S], key: &str) -> Option<Span> {
        self.at(path)?.as_map()?.get(key).map(|e| e.key_span)
    }

    /// The name of the node's type, for messages.
    pub fn type_name(&self) -> &'static str {
        self.value.type_name()
    }

    /// Converts to plain JSON (spans and tags dropped).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(m) => J::Object(
                m.iter()
                    .map(|(k, e)| (k.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }

    /// Builds a tree from JSON, every node at `span` (for values berth makes
    /// up, e.g. the long form of a short-syntax port, which points at the
    /// short form it came from).
    pub fn from_json(value: &serde_json::Value, span: Span) -> Node {
        use serde_json::Value as J;
        let v = match value {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(0.0)),
            },
            J::String(s) => Value::Str(s.clone()),
            J::Array(items) => Value::Seq(items.iter().map(|i| Node::from_json(i, span)).collect()),
            J::Object(m) => Value::Map(
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            Entry {
                                key_span: span,
                                value: Node::from_json(v, span),
                            },
                        )
                    })
                    .collect(),
            ),
        };
        Node::new(v, span)
    }

    /// The scalar as a string, the way Compose stringifies environment
    /// values and labels (`42` -> "42", `true` -> "true"); None for null and
    /// collections.
    pub fn scalar_string(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(format_float(*f)),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }
}

impl Value {
    /// The name of the type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "number",
            Value::Str(_) => "string",
            Value::Seq(_) => "sequence",
            Value::Map(_) => "mapping",
        }
    }
}

/// "a string", "an integer": a type name with its article, for messages.
pub fn with_article(word: &str) -> String {
    let article = if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {word}")
}

/// Formats a float like Go's `%v` does for the common cases (`0.5`, `1.1`,
/// `2`), which is how the reference stringifies YAML floats.
pub fn format_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let s = f.to_string();
    if s.len() > 21 { format!("{f:e}") } else { s }
}
