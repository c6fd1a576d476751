//! `x-berth.dashboard` as written to [`DashboardSettings`], every error at
//! its line: nowhere to serve it, an address or path that does not parse, a
//! path with no edge proxy to mount it on, a listener other machines can
//! reach with no `auth`, and an `auth` with both or neither kind.

use std::net::SocketAddr;
use std::path::Path;

use crate::context::Ctx;
use crate::dashboard::{DashboardAuth, DashboardSettings, raw};
use crate::diag::{Diagnostic, DiagnosticKind};
use crate::xberth::ProxySettings;
use crate::yaml::{Node, from_node};

/// Errors at lines under `x-berth.dashboard`.
struct Errors<'c, 'a, 'n> {
    ctx: &'c mut Ctx<'a>,
    node: &'n Node,
    failed: bool,
}

impl Errors<'_, '_, '_> {
    fn push(&mut self, path: &[&str], message: String, help: &str) {
        self.failed = true;
        let full = [&["dashboard"][..], path].concat();
        self.ctx.sink.push(
            Diagnostic::error(
                DiagnosticKind::InvalidValue,
                self.node.span_at(&full),
                message,
            )
            .with_help(help),
        );
    }
}

/// The project's `x-berth.dashboard` (`node` is the top-level `x-berth`);
/// `None` when it is not configured (the dashboard is off).
pub(crate) fn project(
    ctx: &mut Ctx<'_>,
    node: &Node,
    dir: &Path,
    state_dir: &Path,
    proxy: Option<&ProxySettings>,
) -> Option<DashboardSettings> {
    let at = node.get("dashboard")?;
    let raw: raw::Dashboard = match from_node(at) {
        Ok(r) => r,
        Err(e) => {
            super::bind_error(ctx, &["x-berth", "dashboard"], e, at.span);
            return None;
        }
    };
    let mut errors = Errors {
        ctx,
        node,
        failed: false,
    };
    if raw.listen.is_none() && raw.path.is_none() {
        errors.push(
            &[],
            "x-berth.dashboard has nowhere to be served".into(),
            "add `listen: \"127.0.0.1:8081\"` (its own listener) or `path: /_berth` (on the edge proxy)",
        );
    }
    let listen = raw.listen.as_deref().and_then(|l| {
        let normalized = super::normalize_listen(l);
        if normalized.is_none() {
            errors.push(
                &["listen"],
                format!("x-berth.dashboard.listen: {l:?} is not an address to listen on"),
                "write HOST:PORT (\"127.0.0.1:8081\") or :PORT for every interface",
            );
        }
        normalized
    });
    let path = raw
        .path
        .as_deref()
        .and_then(|p| mount_path(&mut errors, p, proxy));
    let auth = match raw.auth {
        None => {
            if let Some(address) = exposed_listener(listen.as_deref(), path.is_some(), proxy) {
                let key = if listen.as_deref() == Some(address.as_str()) {
                    "listen"
                } else {
                    "path"
                };
                errors.push(
                    &[key],
                    format!(
                        "x-berth.dashboard: {address} is reachable from other machines and the dashboard has no `auth`"
                    ),
                    "add `auth: {token_file: ./.berth-token}` (or `basic: {user, password_file}`), or listen on 127.0.0.1",
                );
            }
            Some(DashboardAuth::Generated {
                token_file: state_dir.join("dashboard.token"),
            })
        }
        Some(a) => auth(&mut errors, a, dir),
    };
    if errors.failed {
        return None;
    }
    Some(DashboardSettings {
        listen,
        path,
        auth: auth?,
        read_only: raw.read_only,
    })
}

/// `path`, without a trailing slash, on a proxy that exists.
fn mount_path(
    errors: &mut Errors<'_, '_, '_>,
    p: &str,
    proxy: Option<&ProxySettings>,
) -> Option<String> {
    let trimmed = p.trim_end_matches('/');
    if !p.starts_with('/') || trimmed.is_empty() || p.contains(['?', '#', ' ']) {
        errors.push(
            &["path"],
            format!("x-berth.dashboard.path: {p:?} is not a path to mount the dashboard on"),
            "write a path of its own under the proxy, e.g. /_berth",
        );
        return None;
    }
    if proxy.is_none() {
        errors.push(
            &["path"],
            "x-berth.dashboard.path mounts the dashboard on the edge proxy, but there is no `x-berth.proxy`".into(),
            "add `x-berth.proxy` with a `listen`, or serve the dashboard on its own with `listen:`",
        );
    }
    Some(trimmed.to_string())
}

/// `auth`: exactly one of a token file and basic credentials.
fn auth(errors: &mut Errors<'_, '_, '_>, a: raw::Auth, dir: &Path) -> Option<DashboardAuth> {
    match (a.token_file, a.basic) {
        (Some(t), None) if !t.trim().is_empty() => Some(DashboardAuth::Token {
            token_file: crate::context::absolute(dir, Path::new(t.trim())),
        }),
        (None, Some(b)) if !b.user.is_empty() && !b.user.contains(':') => {
            Some(DashboardAuth::Basic {
                user: b.user,
                password_file: crate::context::absolute(dir, Path::new(&b.password_file)),
            })
        }
        (None, Some(b)) => {
            errors.push(
                &["auth", "basic", "user"],
                format!(
                    "x-berth.dashboard.auth.basic.user: {:?} is not a user name",
                    b.user
                ),
                "write a name without a colon",
            );
            None
        }
        _ => {
            errors.push(
                &["auth"],
                "x-berth.dashboard.auth needs exactly one of `token_file` and `basic`".into(),
                "write `auth: {token_file: ./.berth-token}` or `auth: {basic: {user: admin, password_file: ./.berth-password}}`",
            );
            None
        }
    }
}

/// The first address the dashboard would be reachable at from another
/// machine: its own listener, or (mounted under a path) a proxy listener
/// that is not loopback.
fn exposed_listener(
    listen: Option<&str>,
    mounted: bool,
    proxy: Option<&ProxySettings>,
) -> Option<String> {
    let exposed = |a: &str| a.parse::<SocketAddr>().is_ok_and(|a| !a.ip().is_loopback());
    if let Some(l) = listen.filter(|l| exposed(l)) {
        return Some(l.to_string());
    }
    let proxy = proxy.filter(|_| mounted)?;
    proxy
        .listen
        .iter()
        .chain(&proxy.listen_tls)
        .find(|a| exposed(a))
        .cloned()
}

#[cfg(test)]
mod tests {
    use crate::dashboard::DashboardAuth;
    use crate::testsupport::load_text as load;

    use crate::testsupport::load_errors as errors;

    const SERVICE: &str = "services:\n  web:\n    command: [x]\n";

    #[test]
    fn dashboard_is_off_unless_configured_and_gets_a_token_on_loopback() {
        let loaded = load(SERVICE).map_err(|d| d.render(false)).unwrap();
        assert!(loaded.project.settings.dashboard.is_none());
        let text =
            format!("{SERVICE}x-berth:\n  state_dir: st\n  dashboard:\n    listen: \"8081\"\n");
        let loaded = load(&text).map_err(|d| d.render(false)).unwrap();
        let p = &loaded.project;
        let d = p.settings.dashboard.as_ref().unwrap();
        assert_eq!(d.listen.as_deref(), Some("127.0.0.1:8081"));
        assert!(!d.read_only);
        assert_eq!(
            d.auth,
            DashboardAuth::Generated {
                token_file: p.directory.join("st").join("dashboard.token")
            }
        );
    }

    #[test]
    fn a_path_is_mounted_on_the_proxy_with_its_auth() {
        let text = format!(
            "{SERVICE}x-berth:\n  proxy:\n    listen: [\":8080\"]\n  dashboard:\n    path: /_berth/\n    read_only: true\n    auth: {{basic: {{user: admin, password_file: ./pw}}}}\n"
        );
        let loaded = load(&text).map_err(|d| d.render(false)).unwrap();
        let p = &loaded.project;
        let d = p.settings.dashboard.as_ref().unwrap();
        assert_eq!(d.path.as_deref(), Some("/_berth"));
        assert!(d.read_only);
        assert_eq!(
            d.auth,
            DashboardAuth::Basic {
                user: "admin".into(),
                password_file: p.directory.join("pw")
            }
        );
    }

    #[test]
    fn exposed_dashboards_need_auth_and_mistakes_are_named_at_their_line() {
        let e = errors(&format!(
            "{SERVICE}x-berth:\n  dashboard:\n    listen: \"0.0.0.0:8081\"\n"
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].0, 6);
        assert!(
            e[0].1
                .contains("0.0.0.0:8081 is reachable from other machines"),
            "{e:?}"
        );
        let e = errors(&format!(
            "{SERVICE}x-berth:\n  proxy:\n    listen: [\":8080\"]\n  dashboard:\n    path: /_berth\n"
        ));
        assert!(e[0].1.contains("0.0.0.0:8080 is reachable"), "{e:?}");
        let e = errors(&format!(
            "{SERVICE}x-berth:\n  dashboard:\n    path: /_berth\n"
        ));
        assert!(e[0].1.contains("there is no `x-berth.proxy`"), "{e:?}");
        let e = errors(&format!(
            "{SERVICE}x-berth:\n  dashboard:\n    read_only: true\n"
        ));
        assert!(e[0].1.contains("nowhere to be served"), "{e:?}");
        let e = errors(&format!(
            "{SERVICE}x-berth:\n  dashboard:\n    listen: nope\n"
        ));
        assert_eq!(e[0].0, 6);
        assert!(e[0].1.contains("\"nope\" is not an address"), "{e:?}");
        let e = errors(&format!(
            "{SERVICE}x-berth:\n  dashboard:\n    listen: \"8081\"\n    auth: {{}}\n"
        ));
        assert!(
            e[0].1.contains("exactly one of `token_file` and `basic`"),
            "{e:?}"
        );
        let e = errors(&format!(
            "{SERVICE}x-berth:\n  dashboard:\n    listen: \"8081\"\n    colour: red\n"
        ));
        assert_eq!(e[0].0, 7, "{e:?}");
    }
}
