//! Durations and byte sizes as written in Compose files.
//!
//! - [`Duration`] reads Go's duration syntax (`1m30s`, `1.5h`, `500ms`, `2us`,
//!   `10µs`) extended with days (`d`, 24 hours) and weeks (`w`, 7 days), which
//!   is what compose-go accepts (`str2duration`). It prints like Go's
//!   `time.Duration` (`1m30s`, `1m0s`, `500ms`, `1h5m30.02s`, `0s`), which is
//!   how `docker compose config` renders durations.
//! - [`ByteSize`] reads sizes the way Docker's go-units `RAMInBytes` does:
//!   a decimal number with an optional fraction, an optional single space, and
//!   an optional binary suffix (`k`, `m`, `g`, `t`, `p`, optionally followed
//!   by `b` or `ib`, case-insensitive; `b` alone means bytes). It prints as a
//!   plain count of bytes; serialized as a decimal string (`"52428800"`), like
//!   compose-go.
//!
//! Both parsers reject negative values and values above `i64::MAX` (the range
//! of Go's `time.Duration` in nanoseconds and of compose-go's byte counts).

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An invalid duration or byte size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnitError {
    /// The text is not a valid duration.
    #[error("invalid duration {input:?}: {reason}")]
    InvalidDuration {
        /// The offending text.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The text is not a valid byte size.
    #[error("invalid size {input:?}: {reason}")]
    InvalidSize {
        /// The offending text.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The largest value either parser accepts: Go's `int64` range.
const MAX_VALUE: u128 = i64::MAX as u128;

const NANOS_PER_MICRO: u128 = 1_000;
const NANOS_PER_MILLI: u128 = 1_000_000;
const NANOS_PER_SECOND: u128 = 1_000_000_000;
const NANOS_PER_MINUTE: u128 = 60 * NANOS_PER_SECOND;
const NANOS_PER_HOUR: u128 = 60 * NANOS_PER_MINUTE;
const NANOS_PER_DAY: u128 = 24 * NANOS_PER_HOUR;
const NANOS_PER_WEEK: u128 = 7 * NANOS_PER_DAY;

// ---------------------------------------------------------------------------
// Duration
// ---------------------------------------------------------------------------

/// A Compose duration such as `10s`, `1m30s` or `2d`.
///
/// Parsed from Go's syntax (a sequence of decimal numbers, each with an
/// optional fraction and a unit among `ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`,
/// `h`) plus `d` (24h) and `w` (7d), as compose-go does. A bare `0` is zero;
/// any other number needs a unit. A leading `+` is allowed; a negative
/// duration is an error (a `-` in front of a zero value is accepted). Values
/// above `i64::MAX` nanoseconds are out of range.
///
/// Displayed like Go's `time.Duration` (`1m30s`, `1m0s`, `500ms`, `1.5µs`,
/// `0s`). Serialized as that string; deserialized from a string, or from a
/// number which is read as its decimal text (so only `0` is accepted without
/// a unit, as in compose-go).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// The zero duration (`0s`).
    pub const ZERO: Self = Self(std::time::Duration::ZERO);

    /// Wraps a standard duration.
    #[must_use]
    pub const fn from_std(duration: std::time::Duration) -> Self {
        Self(duration)
    }

    /// A duration of `nanos` nanoseconds.
    #[must_use]
    pub const fn from_nanos(nanos: u64) -> Self {
        Self(std::time::Duration::from_nanos(nanos))
    }

    /// The standard duration.
    #[must_use]
    pub const fn as_std(self) -> std::time::Duration {
        self.0
    }

    /// The length in nanoseconds.
    #[must_use]
    pub const fn as_nanos(self) -> u128 {
        self.0.as_nanos()
    }

    /// Parses a Compose duration (see the type documentation).
    ///
    /// # Errors
    ///
    /// [`UnitError::InvalidDuration`] when the text is empty, has a number
    /// without a unit or an unknown unit, is negative, or exceeds `i64::MAX`
    /// nanoseconds.
    pub fn parse(input: &str) -> Result<Self, UnitError> {
        parse_duration(input)
    }
}

impl From<std::time::Duration> for Duration {
    fn from(duration: std::time::Duration) -> Self {
        Self(duration)
    }
}

impl From<Duration> for std::time::Duration {
    fn from(duration: Duration) -> Self {
        duration.0
    }
}

impl FromStr for Duration {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_go_duration(f, self.0.as_nanos())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"1m30s\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse_duration(v).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        self.visit_str(&v.to_string())
    }
}

/// Nanoseconds per unit of a duration suffix, `None` for an unknown unit.
fn duration_unit(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => NANOS_PER_MICRO,
        "ms" => NANOS_PER_MILLI,
        "s" => NANOS_PER_SECOND,
        "m" => NANOS_PER_MINUTE,
        "h" => NANOS_PER_HOUR,
        "d" => NANOS_PER_DAY,
        "w" => NANOS_PER_WEEK,
        _ => return None,
    })
}

/// Splits `s` after its leading ASCII digits.
fn split_digits(s: &str) -> (&str, &str) {
    let end = s.bytes().take_while(u8::is_ascii_digit).count();
    // `end` is the position of an ASCII byte (or the end), a char boundary.
    s.split_at_checked(end).unwrap_or((s, ""))
}

fn parse_duration(input: &str) -> Result<Duration, UnitError> {
    let fail = |reason: String| UnitError::InvalidDuration {
        input: input.to_owned(),
        reason,
    };
    let (negative, mut rest) = match input.as_bytes().first() {
        Some(b'-') => (true, input.get(1..).unwrap_or("")),
        Some(b'+') => (false, input.get(1..).unwrap_or("")),
        _ => (false, input),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(fail("empty duration".to_owned()));
    }

    let mut total: u128 = 0;
    while !rest.is_empty() {
        // [0-9]*(\.[0-9]*)?
        let (int_digits, after_int) = split_digits(rest);
        let (frac_digits, after_number) = match after_int.strip_prefix('.') {
            Some(after_dot) => split_digits(after_dot),
            None => ("", after_int),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(fail("expected a number".to_owned()));
        }
        // The unit runs up to the next digit or dot.
        let unit_len = after_number
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after_number.len());
        let (unit, after_unit) = after_number
            .split_at_checked(unit_len)
            .unwrap_or((after_number, ""));
        if unit.is_empty() {
            return Err(fail("missing unit".to_owned()));
        }
        let Some(scale) = duration_unit(unit) else {
            return Err(fail(format!("unknown unit {unit:?}")));
        };
        let out_of_range = || fail("out of range".to_owned());

        let mut whole: u128 = 0;
        for digit in int_digits.bytes() {
            whole = whole * 10 + u128::from(digit - b'0');
            if whole > MAX_VALUE {
                return Err(out_of_range());
            }
        }
        let mut value = whole.checked_mul(scale).ok_or_else(out_of_range)?;
        // Like Go, stop accumulating fraction digits once precision runs out.
        let mut numerator: u128 = 0;
        let mut denominator: u128 = 1;
        for digit in frac_digits.bytes().take(19) {
            numerator = numerator * 10 + u128::from(digit - b'0');
            denominator *= 10;
        }
        value += numerator * scale / denominator;
        total = total.checked_add(value).ok_or_else(out_of_range)?;
        if total > MAX_VALUE {
            return Err(out_of_range());
        }
        rest = after_unit;
    }

    if negative && total != 0 {
        return Err(fail("negative durations are not supported".to_owned()));
    }
    let nanos = u64::try_from(total).map_err(|_| fail("out of range".to_owned()))?;
    Ok(Duration::from_nanos(nanos))
}

/// Writes `.fraction` (with `digits` digits, trailing zeros removed) when
/// `fraction` is not zero.
fn write_fraction(f: &mut fmt::Formatter<'_>, fraction: u128, digits: usize) -> fmt::Result {
    if fraction == 0 {
        return Ok(());
    }
    let text = format!("{fraction:0digits$}");
    write!(f, ".{}", text.trim_end_matches('0'))
}

/// Writes nanoseconds as Go's `time.Duration.String` does.
fn write_go_duration(f: &mut fmt::Formatter<'_>, nanos: u128) -> fmt::Result {
    if nanos == 0 {
        f.write_str("0s")
    } else if nanos < NANOS_PER_MICRO {
        write!(f, "{nanos}ns")
    } else if nanos < NANOS_PER_MILLI {
        write!(f, "{}", nanos / NANOS_PER_MICRO)?;
        write_fraction(f, nanos % NANOS_PER_MICRO, 3)?;
        f.write_str("\u{b5}s")
    } else if nanos < NANOS_PER_SECOND {
        write!(f, "{}", nanos / NANOS_PER_MILLI)?;
        write_fraction(f, nanos % NANOS_PER_MILLI, 6)?;
        f.write_str("ms")
    } else {
        let hours = nanos / NANOS_PER_HOUR;
        let minutes = nanos / NANOS_PER_MINUTE;
        if hours > 0 {
            write!(f, "{hours}h")?;
        }
        if minutes > 0 {
            write!(f, "{}m", minutes % 60)?;
        }
        write!(f, "{}", (nanos / NANOS_PER_SECOND) % 60)?;
        write_fraction(f, nanos % NANOS_PER_SECOND, 9)?;
        f.write_str("s")
    }
}

// ---------------------------------------------------------------------------
// ByteSize
// ---------------------------------------------------------------------------

/// A number of bytes, such as a memory limit or a tmpfs size.
///
/// Parsed like go-units `RAMInBytes`: `20971520`, `512M`, `1g`, `1.5GB`,
/// `10k`, `64KiB`, `100 MB`, `1024b`. The suffix is case-insensitive and
/// binary (`k` = 1024); `b`/`ib` after it are optional; the number may have
/// a fraction or a decimal exponent and is truncated to whole bytes after
/// applying the suffix. Negative sizes and sizes above `i64::MAX` are errors.
///
/// Displayed as the plain number of bytes. Serialized as a decimal string
/// (`"52428800"`), like compose-go; deserialized from an integer or a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// The number of bytes.
    #[must_use]
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// Parses a size (see the type documentation).
    ///
    /// # Errors
    ///
    /// [`UnitError::InvalidSize`] when the text is empty, is not a number
    /// followed by a known suffix, is negative, or exceeds `i64::MAX` bytes.
    pub fn parse(input: &str) -> Result<Self, UnitError> {
        parse_size(input)
    }
}

impl From<u64> for ByteSize {
    fn from(bytes: u64) -> Self {
        Self(bytes)
    }
}

impl FromStr for ByteSize {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_size(s)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ByteSizeVisitor)
    }
}

struct ByteSizeVisitor;

impl Visitor<'_> for ByteSizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte count or a size such as \"512m\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
        parse_size(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
        if u128::from(v) > MAX_VALUE {
            return Err(E::custom(UnitError::InvalidSize {
                input: v.to_string(),
                reason: "too large".to_owned(),
            }));
        }
        Ok(ByteSize(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
        u64::try_from(v).map(ByteSize).map_err(|_| {
            E::custom(UnitError::InvalidSize {
                input: v.to_string(),
                reason: "negative sizes are not allowed".to_owned(),
            })
        })
    }
}

/// The multiplier of a size suffix (`""`, `b`, `k`, `kb`, `kib`, ...).
fn size_multiplier(suffix: &str) -> Option<u128> {
    if suffix.is_empty() {
        return Some(1);
    }
    let lower = suffix.to_ascii_lowercase();
    let (head, tail) = lower.split_at_checked(1)?;
    let shift = match head {
        "b" if tail.is_empty() => return Some(1),
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return None,
    };
    matches!(tail, "" | "b" | "ib").then_some(1u128 << shift)
}

/// Most significant digits kept from a size's mantissa: 10^22 < 2^74, so
/// the mantissa times the largest multiplier (2^50) fits in a `u128`.
const MAX_SIZE_DIGITS: usize = 22;

/// Parses `[+]digits[.digits][e[+-]digits]` exactly and returns
/// `floor(value * multiplier)`, or `None` when the text is not a number.
/// Values too large for a `u128` saturate to `u128::MAX`.
fn scaled_decimal(num: &str, multiplier: u128) -> Option<u128> {
    let num = num.strip_prefix('+').unwrap_or(num);
    let (mantissa_text, exponent_text) = match num.find(['e', 'E']) {
        Some(at) => (num.get(..at)?, Some(num.get(at + 1..)?)),
        None => (num, None),
    };
    let (int_digits, after_int) = split_digits(mantissa_text);
    let frac_digits = match after_int.strip_prefix('.') {
        Some(after_dot) => {
            let (digits, after) = split_digits(after_dot);
            if !after.is_empty() {
                return None;
            }
            digits
        }
        None if after_int.is_empty() => "",
        None => return None,
    };
    if int_digits.is_empty() && frac_digits.is_empty() {
        return None;
    }

    let mut exponent: i64 = 0;
    if let Some(text) = exponent_text {
        let (negative, digits) = match text.as_bytes().first() {
            Some(b'-') => (true, text.get(1..)?),
            Some(b'+') => (false, text.get(1..)?),
            _ => (false, text),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        for digit in digits.bytes() {
            exponent = (exponent * 10 + i64::from(digit - b'0')).min(1_000_000);
        }
        if negative {
            exponent = -exponent;
        }
    }

    // Accumulate significant digits; dropped integer digits raise the
    // exponent, dropped fraction digits only lose precision below a byte.
    let mut mantissa: u128 = 0;
    let mut kept = 0usize;
    for digit in int_digits.bytes() {
        if kept < MAX_SIZE_DIGITS {
            mantissa = mantissa * 10 + u128::from(digit - b'0');
            if mantissa > 0 {
                kept += 1;
            }
        } else {
            exponent += 1;
        }
    }
    for digit in frac_digits.bytes() {
        if kept >= MAX_SIZE_DIGITS {
            break;
        }
        mantissa = mantissa * 10 + u128::from(digit - b'0');
        if mantissa > 0 {
            kept += 1;
        }
        exponent -= 1;
    }

    if mantissa == 0 {
        return Some(0);
    }
    let scaled = mantissa * multiplier;
    if exponent >= 0 {
        let power = u32::try_from(exponent)
            .ok()
            .and_then(|e| 10u128.checked_pow(e));
        Some(
            power
                .and_then(|p| scaled.checked_mul(p))
                .unwrap_or(u128::MAX),
        )
    } else {
        let power = u32::try_from(-exponent)
            .ok()
            .and_then(|e| 10u128.checked_pow(e));
        // A divisor beyond u128 exceeds the dividend: the result is zero.
        Some(power.map_or(0, |p| scaled / p))
    }
}

fn parse_size(input: &str) -> Result<ByteSize, UnitError> {
    let fail = |reason: String| UnitError::InvalidSize {
        input: input.to_owned(),
        reason,
    };
    if input.is_empty() {
        return Err(fail("empty size".to_owned()));
    }
    if input.starts_with('-') {
        return Err(fail("negative sizes are not allowed".to_owned()));
    }
    // As go-units: the number ends at the last digit, dot or space; a space
    // there separates the number from the suffix.
    let Some(sep) = input.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ') else {
        return Err(fail("expected a number".to_owned()));
    };
    let (number, suffix) = match (input.get(..sep), input.get(sep..=sep), input.get(sep + 1..)) {
        (Some(before), Some(" "), Some(after)) => (before, after),
        (_, Some(_), Some(after)) => (input.get(..=sep).unwrap_or(input), after),
        _ => return Err(fail("expected a number".to_owned())),
    };
    let Some(multiplier) = size_multiplier(suffix) else {
        return Err(fail(format!("unknown unit {suffix:?}")));
    };
    let Some(bytes) = scaled_decimal(number, multiplier) else {
        return Err(fail("expected a number".to_owned()));
    };
    if bytes > MAX_VALUE {
        return Err(fail("too large".to_owned()));
    }
    u64::try_from(bytes)
        .map(ByteSize)
        .map_err(|_| fail("too large".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsupport::{Rng, chars, conformance_json};

    #[test]
    fn duration_vectors() {
        let data = conformance_json("durations.json");
        let cases = data["cases"].as_array().expect("cases");
        let mut failures = Vec::new();
        let mut formatted_checked = 0;
        for case in cases {
            let input = case["input"].as_str().expect("input");
            let expect_error = case["error"].as_bool().unwrap_or(false);
            match (Duration::parse(input), expect_error) {
                (Err(_), true) => {}
                (Ok(got), true) => {
                    failures.push(format!("{input:?}: expected an error, got {got}"))
                }
                (Err(e), false) => failures.push(format!("{input:?}: unexpected error: {e}")),
                (Ok(got), false) => {
                    let want = u128::from(case["nanoseconds"].as_u64().expect("nanoseconds"));
                    if got.as_nanos() != want {
                        failures.push(format!("{input:?}: got {} ns, want {want}", got.as_nanos()));
                    }
                    if let Some(formatted) = case.get("formatted").and_then(|f| f.as_str()) {
                        formatted_checked += 1;
                        if got.to_string() != formatted {
                            failures.push(format!("{input:?}: formatted {got}, want {formatted}"));
                        }
                    }
                    // What we print must read back to the same value.
                    if Duration::parse(&got.to_string()) != Ok(got) {
                        failures.push(format!("{input:?}: {got} does not read back"));
                    }
                }
            }
        }
        eprintln!(
            "durations.json: {} cases run, {} passed ({formatted_checked} with `formatted`)",
            cases.len(),
            cases.len() - failures.len()
        );
        assert_eq!(cases.len(), 30, "case count changed");
        assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    }

    fn nanos(s: &str) -> u128 {
        Duration::parse(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .as_nanos()
    }

    #[test]
    fn duration_parsing() {
        assert_eq!(nanos("0"), 0);
        assert_eq!(nanos("-0"), 0);
        assert_eq!(nanos("+5s"), 5_000_000_000);
        assert_eq!(nanos("1.5h"), 5_400_000_000_000);
        assert_eq!(nanos(".5s"), 500_000_000);
        assert_eq!(nanos("5.s"), 5_000_000_000);
        assert_eq!(nanos("1\u{b5}s"), 1_000);
        assert_eq!(nanos("1\u{3bc}s"), 1_000);
        assert_eq!(nanos("3ns"), 3);
        assert_eq!(nanos("1d12h"), 36 * 3_600_000_000_000);
        assert_eq!(nanos("1.000000001s"), 1_000_000_001);
        assert_eq!(nanos("0.0000000000000000000001s"), 0);
        assert_eq!(nanos("2562047h47m16.854775807s"), i64::MAX as u128);
    }

    #[test]
    fn duration_errors() {
        let err = |s: &str| Duration::parse(s).expect_err(s).to_string();
        assert_eq!(err("10x"), r#"invalid duration "10x": unknown unit "x""#);
        assert_eq!(err("10"), r#"invalid duration "10": missing unit"#);
        assert_eq!(err(""), r#"invalid duration "": empty duration"#);
        assert_eq!(err("-"), r#"invalid duration "-": empty duration"#);
        assert_eq!(err("s"), r#"invalid duration "s": expected a number"#);
        assert_eq!(err(".s"), r#"invalid duration ".s": expected a number"#);
        assert_eq!(
            err("-5s"),
            r#"invalid duration "-5s": negative durations are not supported"#
        );
        assert_eq!(
            err("2562047h47m16.854775808s"),
            r#"invalid duration "2562047h47m16.854775808s": out of range"#
        );
        assert!(err("99999999999999999999999999h").contains("out of range"));
        assert!(err("1 s").contains("unknown unit \" s\""));
        assert!(err("1s ").contains("unknown unit"));
        assert!(err("1S").contains("unknown unit \"S\""));
    }

    #[test]
    fn duration_formatting_matches_go() {
        let show = |n: u64| Duration::from_nanos(n).to_string();
        assert_eq!(show(0), "0s");
        assert_eq!(show(2), "2ns");
        assert_eq!(show(1_500), "1.5\u{b5}s");
        assert_eq!(show(500_000_000), "500ms");
        assert_eq!(show(1_100_000), "1.1ms");
        assert_eq!(show(60_000_000_000), "1m0s");
        assert_eq!(show(90_000_000_000), "1m30s");
        assert_eq!(show(3_600_000_000_000), "1h0m0s");
        assert_eq!(show(3_930_000_000_000), "1h5m30s");
        assert_eq!(show(3_930_020_000_000), "1h5m30.02s");
        assert_eq!(show(172_800_000_000_000), "48h0m0s");
        assert_eq!(show(i64::MAX as u64), "2562047h47m16.854775807s");
        // Beyond Go's range (only reachable through the public field).
        let huge = Duration(std::time::Duration::MAX).to_string();
        assert!(huge.ends_with('s'), "{huge}");
    }

    #[test]
    fn duration_serde() {
        let d: Duration = serde_json::from_str("\"1m30s\"").expect("string");
        assert_eq!(d.as_std(), std::time::Duration::from_secs(90));
        assert_eq!(serde_json::to_string(&d).expect("ser"), "\"1m30s\"");
        let zero: Duration = serde_json::from_str("0").expect("zero");
        assert_eq!(zero, Duration::ZERO);
        let err = serde_json::from_str::<Duration>("10").expect_err("no unit");
        assert!(err.to_string().contains("missing unit"), "{err}");
        assert!(serde_json::from_str::<Duration>("-3").is_err());
        assert!(serde_json::from_str::<Duration>("1.5").is_err());
        assert!(serde_json::from_str::<Duration>("true").is_err());
    }

    fn size(s: &str) -> u64 {
        ByteSize::parse(s).unwrap_or_else(|e| panic!("{s}: {e}")).0
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(size("50M"), 52_428_800);
        assert_eq!(size("20M"), 20_971_520);
        assert_eq!(size("20971520"), 20_971_520);
        assert_eq!(size("1g"), 1 << 30);
        assert_eq!(size("512m"), 512 << 20);
        assert_eq!(size("1.5g"), 1_610_612_736);
        assert_eq!(size("1.5GB"), 1_610_612_736);
        assert_eq!(size("10k"), 10_240);
        assert_eq!(size("1kb"), 1_024);
        assert_eq!(size("64KiB"), 65_536);
        assert_eq!(size("100 MB"), 100 << 20);
        assert_eq!(size("1024b"), 1_024);
        assert_eq!(size("1024B"), 1_024);
        assert_eq!(size("0"), 0);
        assert_eq!(size("0k"), 0);
        assert_eq!(size("+5"), 5);
        assert_eq!(size("1.9"), 1);
        assert_eq!(size("5."), 5);
        assert_eq!(size("1 "), 1);
        assert_eq!(size(".5k"), 512);
        assert_eq!(size("1e3"), 1_000);
        assert_eq!(size("1e3k"), 1_024_000);
        assert_eq!(size("1e-2k"), 10);
        assert_eq!(size("2p"), 2 << 50);
        assert_eq!(size("7t"), 7 << 40);
        assert_eq!(size("9223372036854775807"), i64::MAX as u64);
        assert_eq!(size("0.000000000000000000000000000000000000000001k"), 0);
        assert_eq!(size("00000000000000000000000000000000000000001k"), 1024);
    }

    #[test]
    fn byte_size_errors() {
        let err = |s: &str| ByteSize::parse(s).expect_err(s).to_string();
        assert_eq!(
            err("-1"),
            r#"invalid size "-1": negative sizes are not allowed"#
        );
        assert_eq!(err("12Q"), r#"invalid size "12Q": unknown unit "Q""#);
        assert_eq!(err(""), r#"invalid size "": empty size"#);
        assert!(err("k").contains("expected a number"));
        assert!(err("1.2.3").contains("expected a number"));
        assert!(err("1kbb").contains("unknown unit"));
        assert!(err("1ki").contains("unknown unit"));
        assert!(err("1bk").contains("unknown unit"));
        assert!(err("1  k").contains("expected a number"));
        assert!(err(" 1").contains("expected a number"));
        assert!(err("9223372036854775808").contains("too large"));
        assert!(err("8388608t").contains("too large"));
        assert!(err("1e400").contains("too large"));
        assert!(err("99999999999999999999999999999999999999999999k").contains("too large"));
    }

    #[test]
    fn byte_size_serde() {
        let from_int: ByteSize = serde_json::from_str("10000").expect("int");
        assert_eq!(from_int, ByteSize(10_000));
        let from_str: ByteSize = serde_json::from_str("\"50M\"").expect("str");
        assert_eq!(from_str, ByteSize(52_428_800));
        assert_eq!(
            serde_json::to_string(&from_str).expect("ser"),
            "\"52428800\""
        );
        assert!(serde_json::from_str::<ByteSize>("-1").is_err());
        assert!(serde_json::from_str::<ByteSize>("1.5").is_err());
        assert!(serde_json::from_str::<ByteSize>("18446744073709551615").is_err());
        assert_eq!(ByteSize(42).to_string(), "42");
    }

    #[test]
    fn parsers_never_panic() {
        let alphabet = chars("0123456789:/-.[]${}\\ abdehkmnpsuwgtiBKMGQ+eE\u{b5}\u{3bc}\u{e9}");
        let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
        for _ in 0..5000 {
            let text = rng.text(&alphabet, 17);
            if let Ok(d) = Duration::parse(&text) {
                assert_eq!(Duration::parse(&d.to_string()), Ok(d), "{text:?}");
            }
            if let Ok(s) = ByteSize::parse(&text) {
                assert_eq!(ByteSize::parse(&s.to_string()), Ok(s), "{text:?}");
            }
        }
    }
}

/// Bytes in words for people: `100 MiB`, `1.5 GiB`, `512 B`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text} {}", UNITS[unit])
}

#[cfg(test)]
mod human_tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(100 * 1024 * 1024), "100 MiB");
        assert_eq!(human_bytes(1536 * 1024 * 1024), "1.5 GiB");
        assert_eq!(human_bytes(1024), "1 KiB");
    }
}
