//! YAML text to [`Node`] documents.
//!
//! Built on the event parser that serde-saphyr uses (`granit_parser`), so we
//! keep full control of what Compose needs and serde would hide: anchors and
//! aliases with an expansion budget (alias bombs fail fast and small), merge
//! keys (`<<`), the `!reset`/`!override` tags, duplicate keys and non-string
//! keys as errors with their place.

use serde_saphyr::granit_parser::{self, Event, Parser, ScalarStyle, ScanError};

use super::{Entry, Map, Node, Tag, Value};
use crate::diag::{Diagnostic, DiagnosticKind, FileId, Span};

/// Resource limits for one file.
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    /// Nodes that alias expansion may add, at least (see `alias_ratio`).
    pub alias_nodes_floor: usize,
    /// Nodes that alias expansion may add per node written in the file.
    pub alias_ratio: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            alias_nodes_floor: 100_000,
            alias_ratio: 10,
        }
    }
}

/// Parses every document of a YAML stream.
///
/// A stream with no document (empty, or only comments) gives an empty vector.
///
/// # Errors
/// The first syntax error, or every structural error (duplicate keys,
/// non-string keys, unknown tags, alias cycles) found in the stream; alias
/// bombs stop at once with [`DiagnosticKind::ExcessiveAliasing`].
pub fn parse_documents(
    text: &str,
    file: FileId,
    limits: ParseLimits,
) -> Result<Vec<Node>, Vec<Diagnostic>> {
    let mut options = granit_parser::Options::default();
    options.emit_comments = false;
    let parser = Parser::new_from_str_with_options(text, options);
    let mut builder = Builder {
        file,
        limits,
        source_nodes: 0,
        alias_nodes: 0,
        anchors: Vec::new(),
        stack: Vec::new(),
        docs: Vec::new(),
        errors: Vec::new(),
    };
    for event in parser {
        match event {
            Ok((event, span)) => {
                if let Err(fatal) = builder.event(event, span) {
                    builder.errors.push(fatal);
                    return Err(builder.errors);
                }
            }
            Err(e) => {
                builder.errors.push(syntax_error(&e, file));
                return Err(builder.errors);
            }
        }
    }
    if builder.errors.is_empty() {
        Ok(builder.docs)
    } else {
        Err(builder.errors)
    }
}

fn syntax_error(e: &ScanError, file: FileId) -> Diagnostic {
    let marker = e.marker();
    let mut message = e.info();
    if message.is_empty() {
        message = "invalid YAML".to_string();
    }
    Diagnostic::error(
        DiagnosticKind::Syntax,
        Span {
            file,
            line: u32::try_from(marker.line()).unwrap_or(u32::MAX),
            column: u32::try_from(marker.col() + 1).unwrap_or(u32::MAX),
            len: 1,
        },
        format!("invalid YAML: {message}"),
    )
}

/// A collection being built.
enum Open {
    Seq {
        span: Span,
        tag: Tag,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        span: Span,
        tag: Tag,
        anchor: usize,
        map: Map,
        /// A key whose value has not come yet.
        key: Option<Node>,
        /// Values of `<<` keys, applied when the mapping ends (explicit keys
        /// win whatever their position; earlier sources win over later ones).
        merges: Vec<Node>,
    },
}

struct Anchor {
    /// None while the anchored collection is still open (an alias to it then
    /// is a cycle).
    node: Option<Node>,
    /// How many nodes an alias to it adds.
    size: usize,
}

struct Builder {
    file: FileId,
    limits: ParseLimits,
    source_nodes: usize,
    alias_nodes: usize,
    anchors: Vec<Anchor>,
    stack: Vec<Open>,
    docs: Vec<Node>,
    errors: Vec<Diagnostic>,
}

impl Builder {
    fn span(&self, s: granit_parser::Span) -> Span {
        let start = s.start;
        let len = if s.end.line() == start.line() {
            s.end.col().saturating_sub(start.col()).max(1)
        } else {
            1
        };
        Span {
            file: self.file,
            line: u32::try_from(start.line()).unwrap_or(u32::MAX),
            column: u32::try_from(start.col() + 1).unwrap_or(u32::MAX),
            len: u32::try_from(len).unwrap_or(u32::MAX),
        }
    }

    fn event(&mut self, event: Event<'_>, raw_span: granit_parser::Span) -> Result<(), Diagnostic> {
        let span = self.span(raw_span);
        match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentStart(..) => {}
            Event::DocumentEnd => {
                self.anchors.clear();
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.source_nodes += 1;
                let tag_name = tag.as_ref().map(|t| t.original());
                let (value, tag) = self.scalar(&text, style, tag_name.as_deref(), span)?;
                let node = Node { value, span, tag };
                self.remember(anchor, &node, 1);
                self.push(node)?;
            }
            Event::SequenceStart(_, anchor, tag) => {
                self.source_nodes += 1;
                let tag_name = tag.as_ref().map(|t| t.original());
                let tag = self.collection_tag(tag_name.as_deref(), "seq", span);
                self.open_anchor(anchor);
                self.stack.push(Open::Seq {
                    span,
                    tag,
                    anchor,
                    items: Vec::new(),
                });
            }
            Event::MappingStart(_, anchor, tag) => {
                self.source_nodes += 1;
                let tag_name = tag.as_ref().map(|t| t.original());
                let tag = self.collection_tag(tag_name.as_deref(), "map", span);
                self.open_anchor(anchor);
                self.stack.push(Open::Map {
                    span,
                    tag,
                    anchor,
                    map: Map::default(),
                    key: None,
                    merges: Vec::new(),
                });
            }
            Event::SequenceEnd => {
                if let Some(Open::Seq {
                    span,
                    tag,
                    anchor,
                    items,
                }) = self.stack.pop()
                {
                    let node = Node {
                        value: Value::Seq(items),
                        span,
                        tag,
                    };
                    self.close_anchor(anchor, &node);
                    self.push(node)?;
                }
            }
            Event::MappingEnd => {
                if let Some(Open::Map {
                    span,
                    tag,
                    anchor,
                    mut map,
                    key,
                    merges,
                }) = self.stack.pop()
                {
                    if let Some(key) = key {
                        // A key with no value (only possible in odd flow forms).
                        let value = Node::new(Value::Null, key.span);
                        self.insert(&mut map, key, value);
                    }
                    for source in merges {
                        self.merge_into(&mut map, source);
                    }
                    let node = Node {
                        value: Value::Map(map),
                        span,
                        tag,
                    };
                    self.close_anchor(anchor, &node);
                    self.push(node)?;
                }
            }
            Event::Alias(id) => {
                let node = self.alias(id, span)?;
                self.push(node)?;
            }
            Event::UnresolvedAlias(name) => {
                return Err(Diagnostic::error(
                    DiagnosticKind::Syntax,
                    span,
                    format!("unknown anchor `{name}`"),
                ));
            }
            _ => {}
        }
        Ok(())
    }

    fn scalar(
        &mut self,
        text: &str,
        style: ScalarStyle,
        tag: Option<&str>,
        span: Span,
    ) -> Result<(Value, Tag), Diagnostic> {
        let plain = style == ScalarStyle::Plain;
        let value = match tag {
            None => {
                if plain {
                    resolve_plain(text)
                } else {
                    Value::Str(text.to_string())
                }
            }
            Some("!reset") => return Ok((resolve_plain_or_str(text, plain), Tag::Reset)),
            Some("!override") => return Ok((resolve_plain_or_str(text, plain), Tag::Override)),
            Some("!!str") | Some("!") => Value::Str(text.to_string()),
            Some("!!null") => Value::Null,
            Some(t @ ("!!int" | "!!float" | "!!bool")) => {
                let resolved = resolve_plain(text);
                let ok = matches!(
                    (t, &resolved),
                    ("!!int", Value::Int(_))
                        | ("!!float", Value::Float(_))
                        | ("!!bool", Value::Bool(_))
                );
                match (t, resolved) {
                    ("!!float", Value::Int(i)) => Value::Float(i as f64),
                    (_, v) if ok => v,
                    _ => {
                        return Err(Diagnostic::error(
                            DiagnosticKind::InvalidType,
                            span,
                            format!("`{text}` is not a valid {t} value"),
                        ));
                    }
                }
            }
            Some(other) => {
                self.errors.push(unknown_tag(other, span));
                Value::Str(text.to_string())
            }
        };
        Ok((value, Tag::None))
    }

    fn collection_tag(&mut self, tag: Option<&str>, kind: &str, span: Span) -> Tag {
        match tag {
            None => Tag::None,
            Some("!reset") => Tag::Reset,
            Some("!override") => Tag::Override,
            Some(t) if t == format!("!!{kind}") => Tag::None,
            Some(other) => {
                self.errors.push(unknown_tag(other, span));
                Tag::None
            }
        }
    }

    fn open_anchor(&mut self, anchor: usize) {
        if anchor == 0 {
            return;
        }
        if self.anchors.len() <= anchor {
            self.anchors.resize_with(anchor + 1, || Anchor {
                node: None,
                size: 0,
            });
        }
        self.anchors[anchor] = Anchor {
            node: None,
            size: 0,
        };
    }

    fn close_anchor(&mut self, anchor: usize, node: &Node) {
        if anchor == 0 {
            return;
        }
        let size = count_nodes(node);
        self.remember(anchor, node, size);
    }

    fn remember(&mut self, anchor: usize, node: &Node, size: usize) {
        if anchor == 0 {
            return;
        }
        if self.anchors.len() <= anchor {
            self.anchors.resize_with(anchor + 1, || Anchor {
                node: None,
                size: 0,
            });
        }
        self.anchors[anchor] = Anchor {
            node: Some(node.clone()),
            size,
        };
    }

    fn alias(&mut self, id: usize, span: Span) -> Result<Node, Diagnostic> {
        let Some(anchor) = self.anchors.get(id) else {
            return Err(Diagnostic::error(
                DiagnosticKind::Syntax,
                span,
                "alias to an unknown anchor",
            ));
        };
        let Some(node) = &anchor.node else {
            let path = self.path();
            return Err(Diagnostic::error(
                DiagnosticKind::AliasCycle,
                span,
                format!("cycle detected: the alias at {path} refers to a node that contains it"),
            )
            .with_help("an anchor cannot be used inside its own definition"));
        };
        self.alias_nodes = self.alias_nodes.saturating_add(anchor.size);
        let budget = self
            .limits
            .alias_nodes_floor
            .max(self.source_nodes.saturating_mul(self.limits.alias_ratio));
        if self.alias_nodes > budget {
            return Err(Diagnostic::error(
                DiagnosticKind::ExcessiveAliasing,
                span,
                format!(
                    "excessive aliasing: aliases expand to more than {budget} nodes; the file looks like an alias bomb"
                ),
            ));
        }
        Ok(node.clone())
    }

    /// Where in the document the builder is, as `a.b[0].c`, for messages.
    fn path(&self) -> String {
        let mut out = String::new();
        for open in &self.stack {
            match open {
                Open::Seq { items, .. } => out.push_str(&format!("[{}]", items.len())),
                Open::Map { key: Some(key), .. } => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(&key.scalar_string().unwrap_or_else(|| "?".to_string()));
                }
                Open::Map { key: None, .. } => {}
            }
        }
        if out.is_empty() {
            "the top level".to_string()
        } else {
            out
        }
    }

    fn push(&mut self, node: Node) -> Result<(), Diagnostic> {
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Open::Seq { items, .. }) => items.push(node),
            Some(Open::Map {
                key: slot @ None, ..
            }) => *slot = Some(node),
            Some(Open::Map { key, .. }) => {
                let Some(key) = key.take() else {
                    return Ok(());
                };
                if matches!(&key.value, Value::Str(s) if s == "<<") && key.tag == Tag::None {
                    if let Some(Open::Map { merges, .. }) = self.stack.last_mut() {
                        merges.push(node);
                    }
                    return Ok(());
                }
                // Take the map out while inserting, to report errors with `self`.
                let mut map = match self.stack.last_mut() {
                    Some(Open::Map { map, .. }) => std::mem::take(map),
                    _ => return Ok(()),
                };
                self.insert(&mut map, key, node);
                if let Some(Open::Map { map: slot, .. }) = self.stack.last_mut() {
                    *slot = map;
                }
            }
        }
        Ok(())
    }

    /// Inserts an explicit entry; non-string and duplicate keys are errors.
    fn insert(&mut self, map: &mut Map, key: Node, value: Node) {
        let place = |b: &Self| {
            if b.stack.len() <= 1 {
                "at the top level".to_string()
            } else {
                // The path of the mapping itself: its ancestors' keys.
                format!("in {}", b.path())
            }
        };
        let name = match key.value {
            Value::Str(s) => s,
            Value::Seq(_) | Value::Map(_) => {
                let place = place(self);
                self.errors.push(Diagnostic::error(
                    DiagnosticKind::NonStringKey,
                    key.span,
                    format!(
                        "non-string key {place}: a {} cannot be a key",
                        key.value.type_name()
                    ),
                ));
                return;
            }
            _ => {
                let shown = key.scalar_string().unwrap_or_else(|| "null".to_string());
                let place = place(self);
                self.errors.push(
                    Diagnostic::error(
                        DiagnosticKind::NonStringKey,
                        key.span,
                        format!("non-string key {place}: {shown}"),
                    )
                    .with_help(format!("quote the key: \"{shown}\"")),
                );
                return;
            }
        };
        if let Some(previous) = map.get(&name) {
            self.errors.push(Diagnostic::error(
                DiagnosticKind::DuplicateKey,
                key.span,
                format!(
                    "line {}: mapping key \"{name}\" already defined at line {}",
                    key.span.line, previous.key_span.line
                ),
            ));
            return;
        }
        map.insert(
            name,
            Entry {
                key_span: key.span,
                value,
            },
        );
    }

    /// Applies a merge key: entries of the merged mapping(s) that the mapping
    /// does not define itself; among several sources the first wins.
    fn merge_into(&mut self, map: &mut Map, value: Node) {
        let path = self.path();
        let sources = match value.value {
            Value::Map(m) => vec![m],
            Value::Seq(items) => {
                let mut maps = Vec::new();
                for item in items {
                    match item.value {
                        Value::Map(m) => maps.push(m),
                        other => self.errors.push(Diagnostic::error(
                            DiagnosticKind::InvalidType,
                            item.span,
                            format!(
                                "map merge requires map or sequence of maps as the value, found a {} at {path}",
                                other.type_name()
                            ),
                        )),
                    }
                }
                maps
            }
            other => {
                self.errors.push(Diagnostic::error(
                    DiagnosticKind::InvalidType,
                    value.span,
                    format!(
                        "map merge requires map or sequence of maps as the value, found a {} at {path}",
                        other.type_name()
                    ),
                ));
                return;
            }
        };
        for source in sources {
            for (k, entry) in source {
                if !map.contains_key(&k) {
                    map.insert(k, entry);
                }
            }
        }
    }
}

fn unknown_tag(tag: &str, span: Span) -> Diagnostic {
    Diagnostic::error(
        DiagnosticKind::UnknownTag,
        span,
        format!("unknown tag `{tag}`"),
    )
    .with_help("Compose files may use `!reset` and `!override`, and the standard `!!str`, `!!int`, `!!float`, `!!bool`, `!!null`")
}

fn count_nodes(node: &Node) -> usize {
    match &node.value {
        Value::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Value::Map(m) => 1 + m.values().map(|e| 1 + count_nodes(&e.value)).sum::<usize>(),
        _ => 1,
    }
}

fn resolve_plain_or_str(text: &str, plain: bool) -> Value {
    if plain {
        resolve_plain(text)
    } else {
        Value::Str(text.to_string())
    }
}

/// Resolves a plain scalar by the YAML 1.2 core schema, reading integers
/// with a leading zero as octal like the Compose reference loader.
pub(crate) fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    let first = text.as_bytes()[0];
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return Value::Str(text.to_string());
    }
    if let Some(i) = resolve_int(text) {
        return Value::Int(i);
    }
    if is_float(text)
        && let Ok(f) = text.parse::<f64>()
    {
        return Value::Float(f);
    }
    Value::Str(text.to_string())
}

fn resolve_int(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() {
        return None;
    }
    let (radix, body) = if let Some(hex) = digits.strip_prefix("0x") {
        (16, hex)
    } else if let Some(oct) = digits.strip_prefix("0o") {
        (8, oct)
    } else if digits.len() > 1
        && digits.starts_with('0')
        && digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if body.is_empty() || !body.bytes().all(|b| (b as char).is_digit(radix)) {
        return None;
    }
    let magnitude = i64::from_str_radix(body, radix).ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

fn is_float(text: &str) -> bool {
    // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let b = text.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - s;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == s {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Node, Vec<Diagnostic>> {
        let mut docs = parse_documents(text, FileId(0), ParseLimits::default())?;
        Ok(docs.remove(0))
    }

    fn errors(text: &str) -> Vec<Diagnostic> {
        parse_documents(text, FileId(0), ParseLimits::default()).expect_err("should fail")
    }

    #[test]
    fn scalars_resolve_by_the_core_schema() {
        let doc = parse("a: 1\nb: 0440\nc: 1.5\nd: true\ne: ~\nf: '1'\ng: 0x1F\nh: hello\ni: -3\nj: 1e3\nk: 089\n")
            .unwrap();
        assert_eq!(doc.get("a").unwrap().value, Value::Int(1));
        assert_eq!(doc.get("b").unwrap().value, Value::Int(0o440));
        assert_eq!(doc.get("c").unwrap().value, Value::Float(1.5));
        assert_eq!(doc.get("d").unwrap().value, Value::Bool(true));
        assert_eq!(doc.get("e").unwrap().value, Value::Null);
        assert_eq!(doc.get("f").unwrap().value, Value::Str("1".into()));
        assert_eq!(doc.get("g").unwrap().value, Value::Int(31));
        assert_eq!(doc.get("h").unwrap().value, Value::Str("hello".into()));
        assert_eq!(doc.get("i").unwrap().value, Value::Int(-3));
        assert_eq!(doc.get("j").unwrap().value, Value::Float(1000.0));
        assert_eq!(doc.get("k").unwrap().value, Value::Int(89));
    }

    #[test]
    fn spans_are_one_based() {
        let doc = parse("services:\n  web:\n    image: nginx\n").unwrap();
        let image = doc.at(&["services", "web", "image"]).unwrap();
        assert_eq!(
            (image.span.line, image.span.column, image.span.len),
            (3, 12, 5)
        );
        let key = doc.key_span_at(&["services", "web"], "image").unwrap();
        assert_eq!((key.line, key.column, key.len), (3, 5, 5));
    }

    #[test]
    fn merge_keys_fill_in_without_overriding() {
        let doc = parse(
            "x: &base\n  a: 1\n  b: 2\ny:\n  b: 3\n  <<: *base\n  c: 4\nz:\n  <<: [{a: 1}, {a: 2, d: 5}]\n",
        )
        .unwrap();
        let y = doc.get("y").unwrap().to_json();
        assert_eq!(y, serde_json::json!({"b": 3, "a": 1, "c": 4}));
        let z = doc.get("z").unwrap().to_json();
        assert_eq!(z, serde_json::json!({"a": 1, "d": 5}));
    }

    #[test]
    fn duplicate_keys_name_both_lines() {
        let errs = errors("services:\n  a:\n    command: x\n    command: y\n");
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].kind, DiagnosticKind::DuplicateKey);
        assert!(
            errs[0]
                .message
                .contains("line 4: mapping key \"command\" already defined at line 3")
        );
        assert_eq!(errs[0].span.line, 4);
    }

    #[test]
    fn non_string_keys_are_errors_with_their_path() {
        let errs = errors("services:\n  123:\n    image: x\n");
        assert_eq!(errs[0].kind, DiagnosticKind::NonStringKey);
        assert!(
            errs[0].message.contains("non-string key in services: 123"),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn merge_of_a_scalar_is_an_error() {
        let errs = errors("a: &x 1\nb:\n  <<: *x\n");
        assert!(errs[0].message.contains("map merge requires map"));
    }

    #[test]
    fn self_referencing_anchor_is_a_cycle() {
        let errs = errors("x: &a\n  b:\n    <<: *a\n");
        assert_eq!(errs[0].kind, DiagnosticKind::AliasCycle);
    }

    #[test]
    fn alias_bombs_fail_fast() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for level in 1..10 {
            let prev = level - 1;
            let refs = vec![format!("*a{prev}"); 9].join(", ");
            text.push_str(&format!("a{level}: &a{level} [{refs}]\n"));
        }
        let start = std::time::Instant::now();
        let errs = errors(&text);
        assert_eq!(errs[0].kind, DiagnosticKind::ExcessiveAliasing);
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn reset_and_override_tags_are_kept() {
        let doc = parse("a: !reset []\nb: !override {x: 1}\nc: !reset null\n").unwrap();
        assert_eq!(doc.get("a").unwrap().tag, Tag::Reset);
        assert_eq!(doc.get("b").unwrap().tag, Tag::Override);
        assert_eq!(doc.get("c").unwrap().tag, Tag::Reset);
    }

    #[test]
    fn unknown_tags_are_errors() {
        let errs = errors("a: !foo bar\n");
        assert_eq!(errs[0].kind, DiagnosticKind::UnknownTag);
    }

    #[test]
    fn syntax_errors_carry_their_place() {
        let errs = errors("services:\n  web:\n\timage: x\n");
        assert_eq!(errs[0].kind, DiagnosticKind::Syntax);
        assert_eq!(errs[0].span.line, 3);
    }

    #[test]
    fn empty_stream_has_no_documents() {
        let docs = parse_documents("# nothing\n", FileId(0), ParseLimits::default()).unwrap();
        assert!(docs.is_empty());
    }
}
