//! Compose variable substitution in one string: `$VAR`, `${VAR}`, `${VAR:-default}` and friends.
//!
//! Compose files may reference variables anywhere a string appears. This module substitutes
//! them in a single string; walking the YAML tree and naming the path of a failing value is
//! the loader's job. The behaviour follows compose-go's `template` package, which is what
//! `docker compose` does:
//!
//! | form | result |
//! | --- | --- |
//! | `$VAR`, `${VAR}` | the value, or `""` (and a warning) when unset |
//! | `${VAR:-default}` / `${VAR-default}` | `default` when unset or empty / only when unset |
//! | `${VAR:+alt}` / `${VAR+alt}` | `alt` when set and non-empty / when set, else `""` |
//! | `${VAR:?msg}` / `${VAR?msg}` | error with `msg` when unset or empty / only when unset |
//! | `$$` | a literal `$` |
//!
//! Names are ASCII letters, digits and `_`, not starting with a digit. A `$` that starts none
//! of these forms (`$`, `$}`, `$1`) is kept as is, while a `${` that does not continue as
//! `NAME}` or `NAME<operator>...}` makes the whole template invalid.
//!
//! Defaults, alternatives and messages are templates themselves (`${A:-${B:-x}}`) and are
//! evaluated only when used, so `${A:?${B}}` with `A` set neither reads nor warns about `B`.
//! The text of an operator form ends at the `}` that balances its `${`, counting every `{`
//! on the way (`${X:-{"json":1}}` has the default `{"json":1}`). Like compose-go, a `{` hides
//! the character right after it from that count, the search stays on the current line, and
//! when the braces never balance the text runs to the last `}` of the line.

use std::fmt;

/// Deepest nesting of templates inside defaults, alternatives and messages that is evaluated.
///
/// Nesting costs stack, so an absurdly nested template is rejected as invalid rather than
/// allowed to overflow it. Real files nest two or three levels.
pub const MAX_NESTING: usize = 64;

/// Result of substituting one template string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Substitution {
    /// The template with every variable replaced.
    pub value: String,
    /// Variables referenced in a form without a default (`$VAR`, `${VAR}`) that were unset,
    /// in order of first appearance, each once. The loader warns once per variable.
    pub unset: Vec<String>,
}

/// Why a template could not be substituted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `${VAR:?msg}` / `${VAR?msg}` failed.
    #[error("required variable {name} is missing a value{}{message}", if .message.is_empty() { "" } else { ": " })]
    MissingRequired {
        /// The variable that is unset (or empty, for `:?`).
        name: String,
        /// The user's message after substitution; empty when the template gives none.
        message: String,
    },
    /// Malformed template, e.g. `${`, `${ VAR}`, `${VAR`, or nesting deeper than
    /// [`MAX_NESTING`].
    #[error("invalid template {template:?}")]
    Invalid {
        /// The whole template string given to [`substitute`].
        template: String,
    },
}

/// The operator of a `${NAME<operator>text}` form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operator {
    /// `:?` — fail when unset or empty.
    RequiredNonEmpty,
    /// `?` — fail when unset.
    Required,
    /// `:-` — default when unset or empty.
    DefaultUnsetOrEmpty,
    /// `-` — default when unset.
    DefaultUnset,
    /// `:+` — alternative when set and non-empty.
    AltNonEmpty,
    /// `+` — alternative when set.
    AltSet,
}

impl Operator {
    /// The operator as written in a template.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::RequiredNonEmpty => ":?",
            Self::Required => "?",
            Self::DefaultUnsetOrEmpty => ":-",
            Self::DefaultUnset => "-",
            Self::AltNonEmpty => ":+",
            Self::AltSet => "+",
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Splits the text between `${` and `}` at its operator: `(name, operator, text)`.
///
/// The operator is the earliest one in `inner`, a `:` form winning over the bare form one
/// character later, so `VARNAME-va:-lu` is `-` and `VARNAME:?val?ue` is `:?`. `None` when
/// `inner` holds no operator.
pub(crate) fn split_operator(inner: &str) -> Option<(&str, Operator, &str)> {
    let bytes = inner.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let (op, len) = match (b, bytes.get(i + 1)) {
            (b':', Some(b'?')) => (Operator::RequiredNonEmpty, 2),
            (b':', Some(b'-')) => (Operator::DefaultUnsetOrEmpty, 2),
            (b':', Some(b'+')) => (Operator::AltNonEmpty, 2),
            (b'?', _) => (Operator::Required, 1),
            (b'-', _) => (Operator::DefaultUnset, 1),
            (b'+', _) => (Operator::AltSet, 1),
            _ => continue,
        };
        // `i` and `i + len` sit next to ASCII bytes, so both are char boundaries.
        return Some((&inner[..i], op, &inner[i + len..]));
    }
    None
}

/// Substitutes every variable in `template`, reading values through `lookup`.
///
/// `lookup` returns `None` for an unset variable and `Some("")` for one set to the empty
/// string. A template without `$` is returned unchanged without further work.
///
/// # Errors
/// [`TemplateError::MissingRequired`] when a `${VAR:?msg}` / `${VAR?msg}` that is evaluated
/// fails, [`TemplateError::Invalid`] for a malformed `${...}` (or one nested deeper than
/// [`MAX_NESTING`]) met on the way. Parts that are not evaluated (an unused default) are not
/// checked.
pub fn substitute(
    template: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Substitution, TemplateError> {
    if !template.contains('$') {
        return Ok(Substitution {
            value: template.to_owned(),
            unset: Vec::new(),
        });
    }
    let mut value = String::with_capacity(template.len());
    let mut eval = Evaluator {
        lookup,
        unset: Vec::new(),
    };
    eval.run(template, &mut value, 0).map_err(|e| match e {
        Failure::Invalid => TemplateError::Invalid {
            template: template.to_owned(),
        },
        Failure::Missing { name, message } => TemplateError::MissingRequired { name, message },
    })?;
    Ok(Substitution {
        value,
        unset: eval.unset,
    })
}

/// A variable referenced by a template, as listed by `berth config --variables`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// The variable's name.
    pub name: String,
    /// The text after `:-` / `-`, unsubstituted (`Some("")` for `${VAR:-}`).
    pub default_value: Option<String>,
    /// The text after `:+` / `+`, unsubstituted.
    pub presence_value: Option<String>,
    /// Whether the reference is `${VAR:?...}` / `${VAR?...}`.
    pub required: bool,
}

/// Every variable referenced in a template (used by `berth config --variables`).
///
/// One entry per reference, in order of appearance: a variable used twice is listed twice,
/// and a caller building a table merges by name. Variables referenced inside a default or
/// an alternative are listed after the variable that carries it; those inside a `?` message
/// are not (compose-go lists them the same way). `$$` is no reference, and a malformed `${`
/// is skipped.
pub fn extract_variables(template: &str) -> Vec<Variable> {
    let mut found = Vec::new();
    if template.contains('$') {
        collect_variables(template, &mut found, 0);
    }
    found
}

fn collect_variables(template: &str, found: &mut Vec<Variable>, depth: usize) {
    for piece in Pieces::new(template).flatten() {
        match piece {
            Piece::Text(_) | Piece::Dollar => {}
            Piece::Var(name) => found.push(Variable {
                name: name.to_owned(),
                default_value: None,
                presence_value: None,
                required: false,
            }),
            Piece::Expr { name, op, text } => {
                let mut var = Variable {
                    name: name.to_owned(),
                    default_value: None,
                    presence_value: None,
                    required: false,
                };
                let nested = match op {
                    Operator::RequiredNonEmpty | Operator::Required => {
                        var.required = true;
                        false
                    }
                    Operator::DefaultUnsetOrEmpty | Operator::DefaultUnset => {
                        var.default_value = Some(text.to_owned());
                        true
                    }
                    Operator::AltNonEmpty | Operator::AltSet => {
                        var.presence_value = Some(text.to_owned());
                        true
                    }
                };
                found.push(var);
                if nested && depth < MAX_NESTING && text.contains('$') {
                    collect_variables(text, found, depth + 1);
                }
            }
        }
    }
}

/// Why evaluation stopped; turned into a [`TemplateError`] at the top.
enum Failure {
    Invalid,
    Missing { name: String, message: String },
}

struct Evaluator<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    /// Unset variables met so far, each once.
    unset: Vec<String>,
}

impl Evaluator<'_> {
    /// Appends the substitution of `template` to `out`.
    fn run(&mut self, template: &str, out: &mut String, depth: usize) -> Result<(), Failure> {
        if depth > MAX_NESTING {
            return Err(Failure::Invalid);
        }
        for piece in Pieces::new(template) {
            match piece.map_err(|Malformed| Failure::Invalid)? {
                Piece::Text(text) => out.push_str(text),
                Piece::Dollar => out.push('$'),
                Piece::Var(name) => match (self.lookup)(name) {
                    Some(value) => out.push_str(&value),
                    None => {
                        if !self.unset.iter().any(|n| n == name) {
                            self.unset.push(name.to_owned());
                        }
                    }
                },
                Piece::Expr { name, op, text } => {
                    let value = (self.lookup)(name);
                    let non_empty = value.as_deref().is_some_and(|v| !v.is_empty());
                    let use_text = match op {
                        Operator::DefaultUnsetOrEmpty | Operator::RequiredNonEmpty => !non_empty,
                        Operator::DefaultUnset | Operator::Required => value.is_none(),
                        Operator::AltNonEmpty => non_empty,
                        Operator::AltSet => value.is_some(),
                    };
                    match (use_text, op) {
                        (true, Operator::RequiredNonEmpty | Operator::Required) => {
                            let mut message = String::new();
                            self.run(text, &mut message, depth + 1)?;
                            return Err(Failure::Missing {
                                name: name.to_owned(),
                                message,
                            });
                        }
                        (true, _) => self.run(text, out, depth + 1)?,
                        // The variable's own value (empty or unset for an unused alternative).
                        (false, _) => out.push_str(value.as_deref().unwrap_or_default()),
                    }
                }
            }
        }
        Ok(())
    }
}

/// One piece of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'a> {
    /// Text kept as is; it may contain a `$` that starts no substitution.
    Text(&'a str),
    /// `$$`, standing for one `$`.
    Dollar,
    /// `$NAME` or `${NAME}`.
    Var(&'a str),
    /// `${NAME<op>text}`, `text` not yet substituted.
    Expr {
        name: &'a str,
        op: Operator,
        text: &'a str,
    },
}

/// A `${` that starts no valid form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Malformed;

/// Splits a template into [`Piece`]s. After a [`Malformed`] item it resumes behind the `${`.
struct Pieces<'a> {
    rest: &'a str,
}

impl<'a> Pieces<'a> {
    fn new(template: &'a str) -> Self {
        Self { rest: template }
    }

    /// Parses the form starting at the `$` that begins `s`; returns it and the length it uses.
    fn dollar(s: &'a str) -> (Result<Piece<'a>, Malformed>, usize) {
        let bytes = s.as_bytes();
        match bytes.get(1) {
            Some(b'$') => (Ok(Piece::Dollar), 2),
            Some(b'{') => match Self::braced(s) {
                Some((piece, len)) => (Ok(piece), len),
                None => (Err(Malformed), 2),
            },
            Some(&b) if is_name_start(b) => {
                let len = 1 + name_len(&s[1..]);
                (Ok(Piece::Var(&s[1..len])), len)
            }
            // A lone `$`: keep it with the text up to the next `$`.
            _ => {
                let len = s[1..].find('$').map_or(s.len(), |i| i + 1);
                (Ok(Piece::Text(&s[..len])), len)
            }
        }
    }

    /// Parses `${NAME}` or `${NAME<op>text}` at the start of `s`.
    fn braced(s: &'a str) -> Option<(Piece<'a>, usize)> {
        let after_brace = &s[2..];
        let name_end = name_len(after_brace);
        if !after_brace.bytes().next().is_some_and(is_name_start) {
            return None;
        }
        if after_brace.as_bytes().get(name_end) == Some(&b'}') {
            return Some((Piece::Var(&after_brace[..name_end]), 2 + name_end + 1));
        }
        let close = closing_brace(s)?;
        let (name, op, text) = split_operator(&s[2..close])?;
        // The operator must follow the name directly (`${foo!-x}` is malformed).
        (name.len() == name_end).then_some((Piece::Expr { name, op, text }, close + 1))
    }
}

impl<'a> Iterator for Pieces<'a> {
    type Item = Result<Piece<'a>, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.rest;
        if s.is_empty() {
            return None;
        }
        let (item, len) = if s.starts_with('$') {
            Self::dollar(s)
        } else {
            let len = s.find('$').unwrap_or(s.len());
            (Ok(Piece::Text(&s[..len])), len)
        };
        self.rest = &s[len..];
        Some(item)
    }
}

/// Index in `s` (which starts with `${`) of the `}` that ends the form; see the module doc.
fn closing_brace(s: &str) -> Option<usize> {
    let line = &s.as_bytes()[..s.find('\n').unwrap_or(s.len())];
    let mut depth = 0usize;
    let mut i = 1;
    while i < line.len() {
        match line[i] {
            b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(i);
                }
            }
            b'{' => {
                depth += 1;
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    line.iter().rposition(|&b| b == b'}')
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

/// Length of the run of name characters (`[A-Za-z0-9_]`) at the start of `s`.
fn name_len(s: &str) -> usize {
    s.bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b == b'_'))
        .unwrap_or(s.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsupport::{conformance_json, report};
    use indexmap::IndexMap;
    use serde_json::Value;

    fn env_lookup(env: &Value) -> impl Fn(&str) -> Option<String> + '_ {
        move |name| env.get(name).and_then(Value::as_str).map(str::to_owned)
    }

    fn check_template_case(case: &Value) -> Result<(), String> {
        let template = case["template"].as_str().ok_or("no template")?;
        let lookup = env_lookup(&case["env"]);
        let got = substitute(template, &lookup);
        if case["error"].as_bool() == Some(true) {
            let err = match got {
                Err(e) => e,
                Ok(s) => return Err(format!("expected an error, got {:?}", s.value)),
            };
            let kind_ok = match case["error_kind"].as_str() {
                Some("missing_required") => matches!(err, TemplateError::MissingRequired { .. }),
                Some("invalid_template") => matches!(err, TemplateError::Invalid { .. }),
                Some(other) => return Err(format!("unknown error_kind {other}")),
                None => true,
            };
            if !kind_ok {
                return Err(format!("wrong error kind: {err:?}"));
            }
            // Our wording is lowercase; compose-go's "Invalid template" differs in case only.
            if let Some(want) = case["error_contains"].as_str() {
                let text = err.to_string();
                if !text.to_lowercase().contains(&want.to_lowercase()) {
                    return Err(format!("error {text:?} does not contain {want:?}"));
                }
            }
            return Ok(());
        }
        let got = got.map_err(|e| format!("unexpected error: {e}"))?;
        if Some(got.value.as_str()) != case["expected"].as_str() {
            return Err(format!(
                "got {:?}, expected {}",
                got.value, case["expected"]
            ));
        }
        if let Some(n) = case["unset_warnings"].as_u64()
            && got.unset.len() as u64 != n
        {
            return Err(format!("{n} unset warnings expected, got {:?}", got.unset));
        }
        Ok(())
    }

    #[test]
    fn template_cases() {
        let data = conformance_json("interpolation.json");
        let cases = data["template_cases"].as_array().unwrap();
        assert!(!cases.is_empty());
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|case| {
                check_template_case(case)
                    .err()
                    .map(|why| format!("  {}: {why}", case["name"]))
            })
            .collect();
        report("template_cases", cases.len(), &failures);
    }

    #[test]
    fn operator_choice_cases() {
        let data = conformance_json("interpolation.json");
        let cases = data["operator_choice_cases"].as_array().unwrap();
        assert!(!cases.is_empty());
        let mut failures = Vec::new();
        for case in cases {
            let input = case["input"].as_str().unwrap();
            let got = split_operator(input).map(|(_, op, _)| op.as_str());
            if got != case["operator"].as_str() {
                failures.push(format!(
                    "  {}: got {got:?}, expected {}",
                    case["name"], case["operator"]
                ));
            }
        }
        report("operator_choice_cases", cases.len(), &failures);
    }

    /// Collects the variables of every string in a JSON value, later references winning.
    fn walk(value: &Value, out: &mut IndexMap<String, Value>) {
        match value {
            Value::String(s) => {
                for v in extract_variables(s) {
                    let entry = serde_json::json!({
                        "name": v.name,
                        "default_value": v.default_value.unwrap_or_default(),
                        "presence_value": v.presence_value.unwrap_or_default(),
                        "required": v.required,
                    });
                    out.insert(v.name, entry);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            Value::Object(map) => map.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }

    #[test]
    fn extract_variables_cases() {
        let data = conformance_json("interpolation.json");
        let cases = data["extract_variables_cases"].as_array().unwrap();
        assert!(!cases.is_empty());
        let mut failures = Vec::new();
        for case in cases {
            let mut got = IndexMap::new();
            walk(&case["input"], &mut got);
            let expected = case["expected"].as_object().unwrap();
            let same =
                got.len() == expected.len() && expected.iter().all(|(k, v)| got.get(k) == Some(v));
            if !same {
                failures.push(format!(
                    "  {}: got {}, expected {}",
                    case["name"],
                    serde_json::to_string(&got).unwrap(),
                    case["expected"]
                ));
            }
        }
        report("extract_variables_cases", cases.len(), &failures);
    }

    fn sub(template: &str, env: &[(&str, &str)]) -> Result<Substitution, TemplateError> {
        let lookup = |name: &str| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        };
        substitute(template, &lookup)
    }

    #[test]
    fn unset_variables_are_listed_once_in_order() {
        let got = sub("$B ${A} ${B} $A ${C:-x} ${D:+y} $SET", &[("SET", "")]).unwrap();
        assert_eq!(got.value, "    x  ");
        assert_eq!(got.unset, ["B", "A"]);
    }

    #[test]
    fn messages_and_errors() {
        let err = sub("${DB_PASSWORD:?DB_PASSWORD must be set}", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "required variable DB_PASSWORD is missing a value: DB_PASSWORD must be set"
        );
        let err = sub("${X?}", &[]).unwrap_err();
        assert_eq!(err.to_string(), "required variable X is missing a value");
        let err = sub("a ${B:-${C:?in default}}", &[]).unwrap_err();
        assert_eq!(
            err,
            TemplateError::MissingRequired {
                name: "C".into(),
                message: "in default".into()
            }
        );
        // An invalid default names the whole template, and only fails when used.
        let err = sub("x ${A:-${ }}", &[]).unwrap_err();
        assert_eq!(
            err,
            TemplateError::Invalid {
                template: "x ${A:-${ }}".into()
            }
        );
        assert_eq!(err.to_string(), r#"invalid template "x ${A:-${ }}""#);
        assert_eq!(sub("x ${A:-${ }}", &[("A", "a")]).unwrap().value, "x a");
    }

    #[test]
    fn brace_matching_follows_compose_go() {
        // Balanced braces end the default, the rest is substituted on its own.
        assert_eq!(sub("${A:-x} and ${B-y}", &[]).unwrap().value, "x and y");
        // A `{` hides the next character from the count, so `{}` opens without closing.
        assert_eq!(sub("${A:-{}} $B}", &[("B", "b")]).unwrap().value, "{}} b");
        assert!(sub("${A:-{}} ${B-y}", &[]).is_err());
        // Unbalanced: the text runs to the last `}` of the line.
        assert_eq!(sub("${A:-{x}", &[]).unwrap().value, "{x");
        // The search stops at the end of the line.
        assert!(sub("${A:-x\n}", &[]).is_err());
        assert_eq!(sub("${A:-x}\n}", &[]).unwrap().value, "x\n}");
        // Escapes inside defaults.
        assert_eq!(sub("${A:-$${B}}", &[]).unwrap().value, "${B}");
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}x{}", "${A:-".repeat(10_000), "}".repeat(10_000));
        assert!(matches!(
            sub(&deep, &[]),
            Err(TemplateError::Invalid { .. })
        ));
        assert_eq!(sub(&deep, &[("A", "set")]).unwrap().value, "set");
        let ok = format!(
            "{}x{}",
            "${A:-".repeat(MAX_NESTING),
            "}".repeat(MAX_NESTING)
        );
        assert_eq!(sub(&ok, &[]).unwrap().value, "x");
        assert_eq!(extract_variables(&deep).len(), MAX_NESTING + 1);
    }

    #[test]
    fn extract_lists_each_reference() {
        let vars = extract_variables("$$A ${B:?msg $C} ${ bad} $D ${E:-$F}");
        let names: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["B", "D", "E", "F"]);
        assert!(vars[0].required);
        assert_eq!(vars[2].default_value.as_deref(), Some("$F"));
        assert!(extract_variables("no variables").is_empty());
    }
}
