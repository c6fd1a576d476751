//! `.env` and `env_file` parsing, as `docker compose` does it.
//!
//! The project's `.env`, `--env-file` files and a service's `env_file` entries are all read
//! with compose-go's dotenv dialect, so berth follows it ([`parse`], [`parse_into`]):
//!
//! - `KEY=value`, `KEY: value` and `export KEY=value`; spaces around the key and the `=` are
//!   dropped. Keys are letters, digits, `_ . - [ ]`; a key with a space is an error.
//! - Unquoted values end at the line's end, lose trailing whitespace and an inline comment
//!   (` #` — a `#` right after text is kept), and have `${VAR}` expanded.
//! - `'single'` quotes keep their text (only `\'` is unescaped); `"double"` quotes unescape
//!   `\a \b \f \n \r \t \v \\ \" \$` and `\0NNN` (octal), then expand `${VAR}`. Quoted values
//!   may span lines.
//! - Expansion uses [`crate::interpolate::substitute`] and looks a name up through the
//!   caller's lookup first, then among the keys already parsed. Unset variables are not
//!   reported (compose-go only logs them).
//! - A bare `KEY` line takes its value from the lookup and is left out when that has none.
//! - `#` lines and blank lines are skipped; a leading UTF-8 BOM is ignored.
//!
//! One deliberate difference: compose-go reads a bare `KEY` on a last line without a
//! newline as the value of an empty-named key; berth treats it like any bare `KEY` line.
//!
//! `format: raw` env files ([`parse_raw`]) use `docker run --env-file` rules instead: every
//! `KEY=VALUE` line is taken verbatim, without quote removal or expansion.

use indexmap::IndexMap;

/// A `.env` text that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DotenvError {
    /// 1-based line of the statement at fault.
    pub line: usize,
    /// What is wrong, lowercase.
    pub message: String,
}

/// Parses `.env` text as compose-go `dotenv.ParseWithLookup` does: quotes, escapes, `export`,
/// comments, multi-line quoted values, `${VAR}` expansion (lookup first, then keys defined
/// earlier in the same text), bare `KEY` lines take their value from lookup (omitted when unset).
/// A leading UTF-8 BOM is ignored.
///
/// # Errors
/// A key with a space or an unexpected character, an unterminated quoted value, or a value
/// whose expansion fails (`${VAR:?message}`, malformed `${`).
pub fn parse(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<IndexMap<String, String>, DotenvError> {
    let mut out = IndexMap::new();
    parse_into(text, lookup, &mut out)?;
    Ok(out)
}

/// Like [`parse`], but adds the keys to `out`, overriding keys it already holds.
///
/// Expansion consults `lookup`, then `out` as it grows, so parsing several files in order
/// into one map gives compose-go's `GetEnvFromFile` (later files override earlier ones and
/// see their keys), and a map prefilled with a service's `environment` gives its `env_file`
/// resolution.
///
/// # Errors
/// As [`parse`]. `out` then holds the keys parsed before the failing statement.
pub fn parse_into(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut IndexMap<String, String>,
) -> Result<(), DotenvError> {
    let mut parser = Parser { line: 1, lookup };
    let mut rest = text.strip_prefix('\u{feff}').unwrap_or(text);
    loop {
        rest = parser.skip_blanks_and_comments(rest);
        if rest.is_empty() {
            return Ok(());
        }
        let (key, bare, after) = parser.key(rest)?;
        if bare {
            if let Some(value) = lookup(key) {
                out.insert(key.to_owned(), value);
            }
            rest = after;
            continue;
        }
        let (value, after) = parser.value(after, out)?;
        out.insert(key.to_owned(), value);
        rest = after;
    }
}

/// `env_file` with `format: raw`: each `KEY=VALUE` line taken verbatim (no quotes removed, no
/// expansion); blank lines and `#` comments skipped.
///
/// Leading whitespace of a line and a trailing `\r` are dropped, the rest of the value is
/// kept. A line without `=` names a variable to take from the environment; without a lookup
/// it is left out (see [`parse_raw_with_lookup`]).
///
/// # Errors
/// A line with nothing before its `=`, or a key containing a space or a tab.
pub fn parse_raw(text: &str) -> Result<IndexMap<String, String>, DotenvError> {
    parse_raw_with_lookup(text, &|_| None)
}

/// [`parse_raw`] where a line without `=` takes its value from `lookup` (and is left out
/// when that has none), as `docker compose` does with the project's environment.
///
/// # Errors
/// As [`parse_raw`].
pub fn parse_raw_with_lookup(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<IndexMap<String, String>, DotenvError> {
    let mut out = IndexMap::new();
    for (index, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let line = if index == 0 {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        };
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (line, None),
        };
        let error = |message: String| DotenvError {
            line: index + 1,
            message,
        };
        if key.is_empty() {
            return Err(error(format!("no variable name in {line:?}")));
        }
        if key.contains([' ', '\t']) {
            return Err(error(format!("variable name {key:?} contains whitespace")));
        }
        match value {
            Some(value) => {
                out.insert(key.to_owned(), value.to_owned());
            }
            None => {
                if let Some(value) = lookup(key) {
                    out.insert(key.to_owned(), value);
                }
            }
        }
    }
    Ok(out)
}

/// Whitespace that does not end a line (compose-go's `isSpace`).
fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}'
    )
}

fn first_line(s: &str) -> &str {
    s.find('\n').map_or(s, |i| &s[..i])
}

struct Parser<'a> {
    /// Line the parser is on, counted as newlines are consumed.
    line: usize,
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Parser<'_> {
    fn error(&self, message: String) -> DotenvError {
        DotenvError {
            line: self.line,
            message,
        }
    }

    /// Skips whitespace, blank lines and `#` comment lines; returns the next statement.
    fn skip_blanks_and_comments<'s>(&mut self, mut src: &'s str) -> &'s str {
        loop {
            let start = src.find(|c: char| !c.is_whitespace()).unwrap_or(src.len());
            self.line += src[..start].bytes().filter(|&b| b == b'\n').count();
            src = &src[start..];
            if !src.starts_with('#') {
                return src;
            }
            src = src.find('\n').map_or("", |i| &src[i..]);
        }
    }

    /// Reads the key of the statement at the start of `src`.
    ///
    /// Returns the key, whether it is a bare `KEY` line, and the text after the separator
    /// with leading spaces removed.
    fn key<'s>(&mut self, src: &'s str) -> Result<(&'s str, bool, &'s str), DotenvError> {
        let src = match src.strip_prefix("export") {
            Some(rest) if rest.starts_with(['\t', '\n', '\u{c}', '\r', ' ']) => {
                rest.trim_start_matches(is_space)
            }
            _ => src,
        };
        if src.is_empty() {
            return Err(self.error("no variable name after export".to_owned()));
        }
        let mut end = None;
        for (i, c) in src.char_indices() {
            match c {
                '=' | ':' | '\n' => {
                    end = Some((i, c));
                    break;
                }
                '_' | '.' | '-' | '[' | ']' => {}
                c if is_space(c) || c.is_alphabetic() || c.is_numeric() => {}
                c => {
                    let mut buf = [0; 4];
                    return Err(self.error(format!(
                        "unexpected character {:?} in variable name {:?}",
                        c.encode_utf8(&mut buf),
                        first_line(src)
                    )));
                }
            }
        }
        // No separator before the end of the text: a bare key on the last line.
        let (key, bare, after) = match end {
            Some((i, c)) => (&src[..i], c == '\n', &src[i + 1..]),
            None => (src, true, ""),
        };
        let key = key.trim_end();
        if key.contains(' ') {
            return Err(self.error("key cannot contain a space".to_owned()));
        }
        if end.is_some_and(|(_, c)| c == '\n') {
            self.line += 1;
        }
        Ok((key, bare, after.trim_start_matches(is_space)))
    }

    /// Reads the value at the start of `src`; returns it and the text after it.
    fn value<'s>(
        &mut self,
        src: &'s str,
        known: &IndexMap<String, String>,
    ) -> Result<(String, &'s str), DotenvError> {
        let start_line = self.line;
        let quote = match src.chars().next() {
            Some(q @ ('"' | '\'')) => q,
            _ => {
                let (text, rest) = src.split_once('\n').unwrap_or((src, ""));
                self.line += 1;
                let text = text.find(" #").map_or(text, |i| &text[..i]).trim_end();
                return Ok((self.expand(text, start_line, known)?, rest));
            }
        };
        let body = &src[1..];
        let mut chars = String::new();
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            if c == '\n' {
                self.line += 1;
            }
            if c == quote && !escaped {
                let value = if quote == '"' {
                    self.expand(&unescape(&chars), start_line, known)?
                } else {
                    chars
                };
                return Ok((value, &body[i + 1..]));
            }
            if c == '\\' && !escaped {
                escaped = true;
                continue;
            }
            // Only the quote loses its backslash here; double quotes unescape the rest later.
            if escaped && c != quote {
                chars.push('\\');
            }
            escaped = false;
            chars.push(c);
        }
        Err(DotenvError {
            line: start_line,
            message: format!("unterminated quoted value {}", first_line(src)),
        })
    }

    /// Expands `${VAR}` in a value: the lookup first, then the keys parsed so far.
    fn expand(
        &self,
        text: &str,
        line: usize,
        known: &IndexMap<String, String>,
    ) -> Result<String, DotenvError> {
        let lookup = |name: &str| (self.lookup)(name).or_else(|| known.get(name).cloned());
        crate::interpolate::substitute(text, &lookup)
            .map(|s| s.value)
            .map_err(|e| DotenvError {
                line,
                message: e.to_string(),
            })
    }
}

/// Resolves the escapes of a double-quoted value, before expansion.
///
/// `\$` becomes `$$` so that expansion yields a literal `$`. `\0` followed by up to three
/// digits is an octal escape when exactly three octal digits give a byte value; otherwise
/// the `0` is dropped and the digits stay, as in compose-go. Any other backslash is kept.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('\\') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let mut used = 1;
        match after.as_bytes().first() {
            Some(b'a') => out.push('\u{7}'),
            Some(b'b') => out.push('\u{8}'),
            Some(b'f') => out.push('\u{c}'),
            Some(b'n') => out.push('\n'),
            Some(b'r') => out.push('\r'),
            Some(b't') => out.push('\t'),
            Some(b'v') => out.push('\u{b}'),
            Some(b'\\') => out.push('\\'),
            Some(b'"') => out.push('"'),
            Some(b'$') => out.push_str("$$"),
            Some(b'0') => {
                let digits = &after[1..];
                let n = digits
                    .bytes()
                    .take(3)
                    .take_while(u8::is_ascii_digit)
                    .count();
                let digits = &digits[..n];
                match u32::from_str_radix(digits, 8)
                    .ok()
                    .filter(|&v| n == 3 && v <= 0xff)
                {
                    Some(v) => out.extend(char::from_u32(v)),
                    None => {
                        out.push('\\');
                        out.push_str(digits);
                    }
                }
                used += n;
            }
            _ => {
                out.push('\\');
                used = 0;
            }
        }
        rest = &after[used..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsupport::{Rng, conformance_dir, conformance_json, report};
    use serde_json::Value;

    fn env_lookup(env: &Value) -> impl Fn(&str) -> Option<String> + '_ {
        move |name| env.get(name).and_then(Value::as_str).map(str::to_owned)
    }

    fn no_lookup(_: &str) -> Option<String> {
        None
    }

    /// compose-go `Read`/`ReadWithLookup` drop keys starting with a digit.
    fn drop_digit_keys(map: IndexMap<String, String>) -> IndexMap<String, String> {
        map.into_iter()
            .filter(|(k, _)| {
                !k.trim_start_matches([' ', '\t', '\n', '\r', '\u{c}'])
                    .starts_with(|c: char| c.is_ascii_digit())
            })
            .collect()
    }

    /// Runs one README mode on `text`.
    fn run_mode(
        mode: &str,
        text: &str,
        env: &Value,
    ) -> Result<Result<IndexMap<String, String>, DotenvError>, String> {
        Ok(match mode {
            "parse" => parse(text, &no_lookup),
            "parse_with_lookup" => parse(text, &env_lookup(env)),
            "read" => parse(text, &no_lookup).map(drop_digit_keys),
            "read_with_lookup" => parse(text, &env_lookup(env)).map(drop_digit_keys),
            "load" => parse(text, &no_lookup).map(|parsed| {
                // Start from the process environment; the file only fills what is unset.
                let mut environ: IndexMap<String, String> = env
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect();
                for (k, v) in parsed {
                    environ.entry(k).or_insert(v);
                }
                environ
            }),
            other => return Err(format!("unknown mode {other}")),
        })
    }

    /// Checks a result against a case's `expected`, `exact`, `absent` and error fields.
    fn check(
        case: &Value,
        got: Result<IndexMap<String, String>, DotenvError>,
        crlf_as_lf: bool,
    ) -> Result<(), String> {
        if case["error"].as_bool() == Some(true) {
            let err = match got {
                Err(e) => e.to_string(),
                Ok(map) => return Err(format!("expected an error, got {map:?}")),
            };
            if let Some(want) = case["error_contains"].as_str() {
                let matches = if case["error_exact"].as_bool() == Some(true) {
                    err == want
                } else {
                    err.contains(want)
                };
                if !matches {
                    return Err(format!("error {err:?} does not match {want:?}"));
                }
            }
            return Ok(());
        }
        let got = got.map_err(|e| format!("unexpected error: {e}"))?;
        let norm = |s: &str| {
            if crlf_as_lf {
                s.replace("\r\n", "\n")
            } else {
                s.to_owned()
            }
        };
        let expected = case["expected"].as_object().ok_or("no expected object")?;
        for (key, want) in expected {
            let want = want.as_str().ok_or("expected value is not a string")?;
            match got.get(key) {
                Some(value) if norm(value) == norm(want) => {}
                other => return Err(format!("{key}: got {other:?}, expected {want:?}")),
            }
        }
        if case["exact"].as_bool() == Some(true) && got.len() != expected.len() {
            return Err(format!("got {got:?}, expected exactly {expected:?}"));
        }
        for key in case["absent"].as_array().into_iter().flatten() {
            let key = key.as_str().ok_or("absent key is not a string")?;
            if got.contains_key(key) {
                return Err(format!("{key} should be absent, got {got:?}"));
            }
        }
        Ok(())
    }

    #[test]
    fn fixture_cases() {
        let data = conformance_json("dotenv/expected.json");
        let dir = conformance_dir().join("dotenv");
        let mut run = 0;
        let mut failures = Vec::new();
        for (file, cases) in data["fixtures"].as_object().unwrap() {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            for case in cases.as_array().unwrap() {
                run += 1;
                let mode = case["mode"].as_str().unwrap();
                let outcome = run_mode(mode, &text, &case["env"])
                    .and_then(|got| check(case, got, mode == "load"));
                if let Err(why) = outcome {
                    failures.push(format!("  {file} {}: {why}", case["test"]));
                }
            }
        }
        assert!(run > 0);
        report("dotenv fixtures", run, &failures);
    }

    #[test]
    fn parse_cases() {
        let data = conformance_json("dotenv/parse_cases.json");
        let cases = data["parse_cases"].as_array().unwrap();
        assert!(!cases.is_empty());
        let mut failures = Vec::new();
        for case in cases {
            let input = case["input"].as_str().unwrap();
            let mode = case["mode"].as_str().unwrap();
            let outcome =
                run_mode(mode, input, &case["env"]).and_then(|got| check(case, got, false));
            if let Err(why) = outcome {
                failures.push(format!("  {}: {why}", case["name"]));
            }
        }
        report("parse_cases", cases.len(), &failures);
    }

    #[test]
    fn multi_file_cases() {
        let data = conformance_json("dotenv/parse_cases.json");
        let cases = data["multi_file_cases"].as_array().unwrap();
        assert!(!cases.is_empty());
        let mut failures = Vec::new();
        for case in cases {
            let lookup = env_lookup(&case["env"]);
            let mut acc = IndexMap::new();
            let got = case["inputs"]
                .as_array()
                .unwrap()
                .iter()
                .try_for_each(|input| parse_into(input.as_str().unwrap(), &lookup, &mut acc))
                .map(|()| acc);
            if let Err(why) = check(case, got, false) {
                failures.push(format!("  {}: {why}", case["name"]));
            }
        }
        report("multi_file_cases", cases.len(), &failures);
    }

    fn map(pairs: &[(&str, &str)]) -> IndexMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn raw_lines_are_verbatim() {
        let text = "\u{feff}A=\"quoted\" \n  # comment\n\nB=$OTHER ${X}\r\nC='x'#y\nD=\nE==e\n   F= spaced\nBARE\nMISSING\n";
        let lookup = |name: &str| (name == "BARE").then(|| "from env".to_owned());
        let expected = map(&[
            ("A", "\"quoted\" "),
            ("B", "$OTHER ${X}"),
            ("C", "'x'#y"),
            ("D", ""),
            ("E", "=e"),
            ("F", " spaced"),
        ]);
        assert_eq!(parse_raw(text).unwrap(), expected);
        let mut with_bare = expected;
        with_bare.insert("BARE".into(), "from env".into());
        assert_eq!(parse_raw_with_lookup(text, &lookup).unwrap(), with_bare);

        let err = parse_raw("A=1\n=nokey\n").unwrap_err();
        assert_eq!(err.line, 2);
        let err = parse_raw("A=1\n\nMY KEY=1\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.to_string().contains("whitespace"), "{err}");
    }

    #[test]
    fn details_beyond_the_vectors() {
        // A bare key on the last line (no newline) is a bare key, not a value.
        let lookup = |name: &str| (name == "FOO").then(|| "env".to_owned());
        assert_eq!(
            parse("A=1\nFOO", &lookup).unwrap(),
            map(&[("A", "1"), ("FOO", "env")])
        );
        assert_eq!(parse("FOO  ", &no_lookup).unwrap(), map(&[]));
        // CRLF line endings.
        assert_eq!(
            parse("A=1\r\nB=\"2\"\r\nFOO\r\n", &lookup).unwrap(),
            map(&[("A", "1"), ("B", "2"), ("FOO", "env")])
        );
        // Octal escapes that are not three octal digits keep their digits.
        assert_eq!(
            parse(r#"A="\0 \012 \0377 \0777 \08""#, &no_lookup).unwrap()["A"],
            "\\ \\12 \u{ff} \\777 \\8"
        );
        // Expansion failures carry the line of the value.
        let err = parse("A=1\n\nB=\"x\n${NOPE:?needed}\"", &no_lookup).unwrap_err();
        assert_eq!(err.line, 3);
        assert_eq!(
            err.to_string(),
            "line 3: required variable NOPE is missing a value: needed"
        );
        // Unterminated quotes report the line where the value starts.
        let err = parse("A=1\nB='x\ny\n", &no_lookup).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(parse("export ", &no_lookup).is_err());
        // Lines are counted through comments and multi-line values.
        let err = parse("# c\nA='\n\n'\nB=2\nC D=1", &no_lookup).unwrap_err();
        assert_eq!(err.to_string(), "line 6: key cannot contain a space");
    }

    #[test]
    fn never_panics_on_noise() {
        const ALPHABET: &[&str] = &[
            "=", "\"", "'", "\\", "$", "{", "}", "\n", "\r", " ", "\t", "#", ":", "-", "+", "?",
            "a", "B", "_", "0", "7", "export ", "é", "\u{feff}",
        ];
        let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
        let lookup = |name: &str| name.len().is_multiple_of(2).then(|| format!("<{name}>"));
        for _ in 0..5000 {
            let text = rng.text(ALPHABET, 48);
            let _ = parse(&text, &lookup);
            let _ = parse_raw_with_lookup(&text, &lookup);
            let _ = parse_raw(&text);
            let _ = crate::interpolate::substitute(&text, &lookup);
            let _ = crate::interpolate::extract_variables(&text);
        }
    }
}
