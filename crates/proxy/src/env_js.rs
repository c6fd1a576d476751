//! `/env-config.js`: a static route's `env_js` as `window._env_ = {...};`,
//! so one SPA build runs with per-deployment settings.
//!
//! Values are JSON; `<`, `>`, `&` and the JavaScript line separators are
//! escaped as `\uXXXX` so no value can close a `<script>` element or break
//! out of the string it sits in.

use bytes::Bytes;
use indexmap::IndexMap;

/// The script text for `env`.
pub(crate) fn script(env: &IndexMap<String, serde_json::Value>) -> Bytes {
    let object: serde_json::Map<String, serde_json::Value> =
        env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let json = serde_json::Value::Object(object).to_string();
    let mut out = String::with_capacity(json.len() + 32);
    out.push_str("window._env_ = ");
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push_str(";\n");
    Bytes::from(out)
}

/// Where a route at `prefix` serves the script.
pub(crate) fn path_for(prefix: &str) -> String {
    format!("{}/env-config.js", prefix.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_cannot_break_out() {
        let mut env = IndexMap::new();
        env.insert("API".to_string(), json!("/api"));
        env.insert(
            "EVIL".to_string(),
            json!("</script><script>alert(\"x\")</script>"),
        );
        env.insert("N".to_string(), json!(3));
        let text = String::from_utf8(script(&env).to_vec()).unwrap();
        assert!(text.starts_with("window._env_ = {\"API\":\"/api\",\"EVIL\":\"\\u003c/script"));
        assert!(!text.contains("</script>"));
        assert!(text.contains("alert(\\\"x\\\")"));
        assert!(text.ends_with(",\"N\":3};\n"));
        assert_eq!(path_for("/"), "/env-config.js");
        assert_eq!(path_for("/app"), "/app/env-config.js");
    }
}
