//! Compose names to Kubernetes names.
//!
//! Compose allows `My_Service.v2`; Kubernetes wants DNS labels
//! (lowercase letters, digits, `-`; a Service name must start with a
//! letter). Names are sanitized; when two sanitize to the same name, or
//! one had to be shortened, a short hash of the original keeps them apart.
//! Names are at most 52 characters, so a StatefulSet's pods and revision
//! labels (`NAME-<hash>`) stay within 63.

use std::collections::HashSet;

use indexmap::IndexMap;
use sha2::{Digest, Sha256};

/// The longest base name given to an object.
pub const MAX_NAME: usize = 52;

/// `raw` as a DNS label of at most `max` characters: lowercase, every run
/// of other characters turned into `-`, no `-` at either end; starts with
/// a letter when `letter_first` (RFC 1035, what a Service needs).
pub fn dns_label(raw: &str, max: usize, letter_first: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        out.push('x');
    }
    if letter_first && !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert_str(0, "svc-");
    }
    if out.len() > max {
        out.truncate(max);
        out = out.trim_end_matches('-').to_string();
    }
    out
}

/// A short, stable hash of a name (6 hex digits).
pub fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(3).map(|b| format!("{b:02x}")).collect()
}

/// Whether `s` is a DNS label (RFC 1123): what a namespace must be.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether `s` is a DNS subdomain: labels joined by dots, at most 253.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Whether `s` is a valid label (or annotation) key: `[prefix/]name`.
pub fn is_label_key(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(is_dns_subdomain) && is_label_name(name)
}

fn is_label_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Whether `s` may be a label value (empty included).
pub fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_label_name(s)
}

/// `raw` as a label value: other characters become `-`, at most 63,
/// alphanumeric at both ends.
pub fn label_value(raw: &str) -> String {
    let mapped: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let mut out: String = trimmed.chars().take(63).collect();
    while out.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        out.pop();
    }
    out
}

/// Whether `s` may be a key of a ConfigMap or Secret.
pub fn is_data_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s != "."
        && s != ".."
}

/// Names given to one family of objects (services, volumes…), each unique.
#[derive(Debug, Default)]
pub(crate) struct Family {
    by_original: IndexMap<String, String>,
    taken: HashSet<String>,
}

impl Family {
    /// Names every original in order; a name already taken (by this family
    /// or by `reserved`) or shortened gets a hash of the original.
    pub(crate) fn new<'a>(
        originals: impl IntoIterator<Item = &'a str>,
        letter_first: bool,
        reserved: &HashSet<String>,
    ) -> Family {
        let mut family = Family::default();
        family.taken.extend(reserved.iter().cloned());
        for original in originals {
            family.add(original, letter_first);
        }
        family
    }

    fn add(&mut self, original: &str, letter_first: bool) -> String {
        if let Some(name) = self.by_original.get(original) {
            return name.clone();
        }
        let full = dns_label(original, usize::MAX, letter_first);
        let mut name = dns_label(original, MAX_NAME, letter_first);
        if name.len() < full.len() || self.taken.contains(&name) {
            let base = dns_label(original, MAX_NAME - 7, letter_first);
            let mut salt = String::new();
            loop {
                name = format!("{base}-{}", short_hash(&format!("{original}{salt}")));
                if !self.taken.contains(&name) {
                    break;
                }
                salt.push('+');
            }
        }
        self.taken.insert(name.clone());
        self.by_original.insert(original.to_string(), name.clone());
        name
    }

    /// The name of an original; one not named before is sanitized as is.
    pub(crate) fn get(&self, original: &str) -> String {
        self.by_original
            .get(original)
            .cloned()
            .unwrap_or_else(|| dns_label(original, MAX_NAME, false))
    }

    /// (original, name) pairs, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.by_original
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// The environment variable in which berth hands a mount's path to a
/// native process (`/var/lib/data` -> `BERTH_VOLUME_VAR_LIB_DATA`); the
/// same variable carries the mount target in the cluster.
pub use berth_compose::volume_var;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_dns_labels() {
        assert_eq!(dns_label("web", 52, true), "web");
        assert_eq!(dns_label("My_Service.v2", 52, true), "my-service-v2");
        assert_eq!(dns_label("__a__b__", 52, true), "a-b");
        assert_eq!(dns_label("1password", 52, true), "svc-1password");
        assert_eq!(dns_label("1password", 52, false), "1password");
        assert_eq!(dns_label("___", 52, true), "x");
        assert_eq!(dns_label("", 52, false), "x");
        assert_eq!(dns_label("café-api", 52, true), "caf-api");
        assert_eq!(dns_label(&"a-".repeat(40), 52, true).len(), 51);
        for raw in ["A", "-a-", "9", "a.b_c-d", "ÄÖÜ", "a--b"] {
            let l = dns_label(raw, 52, true);
            assert!(
                is_dns_label(&l) && l.starts_with(|c: char| c.is_ascii_lowercase()),
                "{raw} -> {l}"
            );
        }
    }

    #[test]
    fn names_that_collide_or_are_shortened_get_a_hash() {
        let long = "a".repeat(60);
        let family = Family::new(
            ["my_db", "my-db", "MY.DB", long.as_str(), "web"],
            true,
            &HashSet::from(["web".to_string()]),
        );
        let names: Vec<String> = family.iter().map(|(_, n)| n.to_string()).collect();
        assert_eq!(names[0], "my-db");
        assert!(
            names[1].starts_with("my-db-") && names[1].len() == 12,
            "{names:?}"
        );
        assert!(
            names[2].starts_with("my-db-") && names[2] != names[1],
            "{names:?}"
        );
        assert!(
            names[3].len() <= MAX_NAME && names[3].starts_with("aaaa"),
            "{names:?}"
        );
        assert!(names[4].starts_with("web-"), "{names:?}");
        let unique: HashSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        assert!(names.iter().all(|n| is_dns_label(n)));
        // Stable: the same input, the same names.
        let again = Family::new(
            ["my_db", "my-db", "MY.DB", long.as_str(), "web"],
            true,
            &HashSet::from(["web".to_string()]),
        );
        assert_eq!(again.get("my-db"), names[1]);
    }

    #[test]
    fn label_keys_and_values() {
        assert!(is_label_key("com.example.description"));
        assert!(is_label_key("app.kubernetes.io/name"));
        assert!(is_label_key("traefik.http.routers.web.rule"));
        assert!(!is_label_key("a b"));
        assert!(!is_label_key("Example.COM/x"));
        assert!(!is_label_key("/x"));
        assert!(is_label_value("") && is_label_value("v1.2_3"));
        assert!(!is_label_value("Accounting webapp"));
        assert_eq!(label_value("my_project"), "my_project");
        assert_eq!(label_value("_a b_"), "a-b");
        assert_eq!(label_value(&"x".repeat(70)).len(), 63);
    }
}
