//! Relative paths in a canonical tree made absolute against a base directory
//! (the project directory, or an included project's), `~` expanded.

use std::path::{Path, PathBuf};

use crate::yaml::{Node, Value};

/// Resolves every path attribute the Compose specification defines as a
/// local path.
pub(crate) fn resolve(doc: &mut Node, base: &Path, home: Option<&str>) {
    let r = Resolver { base, home };
    if let Some(services) = doc.get_mut("services").and_then(Node::as_map_mut) {
        for entry in services.values_mut() {
            r.service(&mut entry.value);
        }
    }
    for kind in ["configs", "secrets"] {
        if let Some(items) = doc.get_mut(kind).and_then(Node::as_map_mut) {
            for entry in items.values_mut() {
                if let Some(file) = entry.value.get_mut("file") {
                    r.path(file);
                }
            }
        }
    }
    if let Some(volumes) = doc.get_mut("volumes").and_then(Node::as_map_mut) {
        for entry in volumes.values_mut() {
            let is_bind = entry
                .value
                .at(&["driver_opts", "o"])
                .and_then(Node::as_str)
                .is_some_and(|o| o.split(',').any(|p| p == "bind"));
            if is_bind
                && let Some(device) = entry
                    .value
                    .get_mut("driver_opts")
                    .and_then(|o| o.get_mut("device"))
            {
                r.path(device);
            }
        }
    }
}

struct Resolver<'a> {
    base: &'a Path,
    home: Option<&'a str>,
}

impl Resolver<'_> {
    fn service(&self, service: &mut Node) {
        if let Some(build) = service.get_mut("build") {
            if let Some(context) = build.get_mut("context") {
                self.context(context);
            }
            if let Some(contexts) = build
                .get_mut("additional_contexts")
                .and_then(Node::as_map_mut)
            {
                for e in contexts.values_mut() {
                    self.context(&mut e.value);
                }
            }
        }
        if let Some(Value::Seq(files)) = service.get_mut("env_file").map(|n| &mut n.value) {
            for f in files {
                if let Some(p) = f.get_mut("path") {
                    self.path(p);
                }
            }
        }
        if let Some(Value::Seq(files)) = service.get_mut("label_file").map(|n| &mut n.value) {
            for f in files {
                self.path(f);
            }
        }
        if let Some(Value::Seq(volumes)) = service.get_mut("volumes").map(|n| &mut n.value) {
            for v in volumes {
                if v.get("type").and_then(Node::as_str) == Some("bind")
                    && let Some(source) = v.get_mut("source")
                {
                    self.path(source);
                }
            }
        }
        if let Some(Value::Seq(watch)) = service
            .get_mut("develop")
            .and_then(|d| d.get_mut("watch"))
            .map(|n| &mut n.value)
        {
            for w in watch {
                if let Some(p) = w.get_mut("path") {
                    self.path(p);
                }
            }
        }
    }

    fn context(&self, node: &mut Node) {
        if let Some(s) = node.as_str()
            && is_remote(s)
        {
            return;
        }
        self.path(node);
    }

    fn path(&self, node: &mut Node) {
        if let Value::Str(s) = &node.value {
            *node = Node::str(self.absolute(s).to_string_lossy().into_owned(), node.span);
        }
    }

    fn absolute(&self, p: &str) -> PathBuf {
        let expanded = match (p.strip_prefix('~'), self.home) {
            (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
                PathBuf::from(format!("{home}{rest}"))
            }
            _ => PathBuf::from(p),
        };
        if expanded.is_absolute() {
            clean(&expanded)
        } else {
            clean(&self.base.join(expanded))
        }
    }
}

/// A build context that is not a local directory (git, URL).
fn is_remote(s: &str) -> bool {
    s.contains("://") || s.starts_with("git@") || s.starts_with("github.com/")
}

pub(crate) use crate::context::clean;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_folds_dots() {
        assert_eq!(clean(Path::new("/a/b/../c/./d/")), PathBuf::from("/a/c/d"));
        assert_eq!(clean(Path::new("/a/.")), PathBuf::from("/a"));
    }

    #[test]
    fn bind_sources_and_files_resolve_but_named_volumes_do_not() {
        let mut doc = Node::from_json(
            &serde_json::json!({
                "services": {"web": {
                    "build": {"context": "./app"},
                    "env_file": [{"path": ".env.web", "required": true}],
                    "volumes": [
                        {"type": "bind", "source": "./data", "target": "/data"},
                        {"type": "bind", "source": "~/cfg", "target": "/cfg"},
                        {"type": "volume", "source": "db", "target": "/db"}
                    ]
                }},
                "secrets": {"s": {"file": "secret.txt"}}
            }),
            crate::diag::Span::NONE,
        );
        resolve(&mut doc, Path::new("/proj"), Some("/home/u"));
        let j = doc.to_json();
        let web = &j["services"]["web"];
        assert_eq!(web["build"]["context"], "/proj/app");
        assert_eq!(web["env_file"][0]["path"], "/proj/.env.web");
        assert_eq!(web["volumes"][0]["source"], "/proj/data");
        assert_eq!(web["volumes"][1]["source"], "/home/u/cfg");
        assert_eq!(web["volumes"][2]["source"], "db");
        assert_eq!(j["secrets"]["s"]["file"], "/proj/secret.txt");
    }
}
