//! Route selection: the longest path prefix on whole segments wins, a route
//! with a matching `host` beats one without at equal length, and the
//! request's port never matters.

/// Routes compiled for matching, each carrying its target `T`.
#[derive(Debug)]
pub(crate) struct Router<T> {
    /// Longest prefix first; host-bound before host-free at equal length.
    entries: Vec<Entry<T>>,
}

#[derive(Debug)]
struct Entry<T> {
    prefix: String,
    host: Option<String>,
    target: T,
}

impl<T> Router<T> {
    /// Compiles `(path, host, target)` triples.
    pub(crate) fn new(routes: impl IntoIterator<Item = (String, Option<String>, T)>) -> Self {
        let mut entries: Vec<Entry<T>> = routes
            .into_iter()
            .map(|(path, host, target)| Entry {
                prefix: normalize_prefix(&path),
                host: host.map(|h| strip_port(&h).to_ascii_lowercase()),
                target,
            })
            .collect();
        // Stable: among equal keys the order written wins.
        entries.sort_by_key(|e| (std::cmp::Reverse(e.prefix.len()), e.host.is_none()));
        Router { entries }
    }

    /// The target for a request, and the matched prefix (for `strip_prefix`).
    pub(crate) fn find(&self, host: Option<&str>, path: &str) -> Option<(&T, &str)> {
        let host = host.map(strip_port);
        self.entries
            .iter()
            .find(|e| {
                prefix_matches(&e.prefix, path)
                    && e.host
                        .as_deref()
                        .is_none_or(|h| host.is_some_and(|r| r.eq_ignore_ascii_case(h)))
            })
            .map(|e| (&e.target, e.prefix.as_str()))
    }

    /// Every target, in matching order.
    pub(crate) fn targets(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().map(|e| &e.target)
    }
}

/// `/api/` and `/api` are the same prefix; `` and `/` are the root.
fn normalize_prefix(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_string()
    } else if trimmed.starts_with('/') {
        trimmed.to_string()
    } else {
        format!("/{trimmed}")
    }
}

/// Whole-segment prefix match: `/api` matches `/api` and `/api/x`, not `/apix`.
pub(crate) fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// `example.com:8080` -> `example.com`; `[::1]:80` -> `[::1]`.
pub(crate) fn strip_port(host: &str) -> &str {
    if let Some(end) = host.strip_prefix('[').and_then(|h| h.find(']')) {
        return &host[..end + 2];
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The path the upstream sees once `prefix` is removed (`/api/x` -> `/x`, `/api` -> `/`).
pub(crate) fn strip(prefix: &str, path: &str) -> String {
    if prefix == "/" {
        return path.to_string();
    }
    let rest = path.strip_prefix(prefix).unwrap_or(path);
    if rest.is_empty() {
        "/".to_string()
    } else {
        rest.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router<&'static str> {
        Router::new([
            ("/".to_string(), None, "web"),
            ("/api".to_string(), None, "api"),
            ("/api/admin/".to_string(), None, "admin"),
            (
                "/api".to_string(),
                Some("Other.example:443".to_string()),
                "other",
            ),
        ])
    }

    #[test]
    fn longest_whole_segment_prefix_wins() {
        let r = router();
        assert_eq!(r.find(None, "/api").map(|t| *t.0), Some("api"));
        assert_eq!(r.find(None, "/api/x").map(|t| *t.0), Some("api"));
        assert_eq!(r.find(None, "/apix").map(|t| *t.0), Some("web"));
        assert_eq!(r.find(None, "/api/admin/u").map(|t| *t.0), Some("admin"));
        assert_eq!(
            r.find(None, "/api/administrator").map(|t| *t.0),
            Some("api")
        );
    }

    #[test]
    fn host_routes_match_without_port_and_case() {
        let r = router();
        let hit = r.find(Some("other.EXAMPLE:8080"), "/api/x");
        assert_eq!(hit.map(|t| *t.0), Some("other"));
        assert_eq!(
            r.find(Some("else.example"), "/api").map(|t| *t.0),
            Some("api")
        );
    }

    #[test]
    fn strip_prefix_keeps_a_leading_slash() {
        assert_eq!(strip("/api", "/api/x"), "/x");
        assert_eq!(strip("/api", "/api"), "/");
        assert_eq!(strip("/", "/x"), "/x");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("h"), "h");
    }
}
