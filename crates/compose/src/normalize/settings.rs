//! `x-berth` as written to typed settings with defaults, checking what the
//! schema cannot (one target per route, a readiness probe of one kind, a
//! regex that compiles, addresses that parse).

use std::path::Path;

use super::edge;
use crate::context::Ctx;
use crate::diag::{Diagnostic, DiagnosticKind};
use crate::units::{ByteSize, Duration};
use crate::xberth::{
    AcmeChallenge, BuildCommand, KubeSettings, ProjectSettings, ProxySettings, ProxyTimeouts,
    Ready, ReadyProbe, Route, RouteTarget, ServiceSettings, TlsSettings, raw,
};
use crate::yaml::{Node, from_node};

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The top-level `x-berth` (`None`: every default).
pub(crate) fn project(ctx: &mut Ctx<'_>, node: Option<&Node>, dir: &Path) -> ProjectSettings {
    let result = match node {
        Some(node) => from_node(node).map_err(|e| (e, node.span)),
        None => Ok(raw::Project::default()),
    };
    let raw: raw::Project = match result {
        Ok(r) => r,
        Err((e, span)) => {
            super::bind_error(ctx, &["x-berth"], e, span);
            let state_dir = dir.join(".berth");
            return ProjectSettings {
                backup: crate::xberth::BackupSettings::defaults(&state_dir),
                dashboard: None,
                state_dir,
                proxy: None,
                strict: false,
                runtime: Default::default(),
                forced_runtime: None,
            };
        }
    };
    let state_dir =
        crate::context::absolute(dir, Path::new(raw.state_dir.as_deref().unwrap_or(".berth")));
    let (proxy, backup, dashboard) = match node {
        Some(node) => {
            let proxy = raw.proxy.map(|p| proxy(ctx, p, node, dir));
            let dashboard = super::dashboard::project(ctx, node, dir, &state_dir, proxy.as_ref());
            (
                proxy,
                super::backup::project(ctx, node, dir, &state_dir),
                dashboard,
            )
        }
        None => (
            None,
            crate::xberth::BackupSettings::defaults(&state_dir),
            None,
        ),
    };
    ProjectSettings {
        backup,
        dashboard,
        state_dir,
        proxy,
        strict: raw.strict,
        runtime: raw.runtime,
        forced_runtime: None,
    }
}

fn proxy(ctx: &mut Ctx<'_>, mut raw: raw::Proxy, node: &Node, dir: &Path) -> ProxySettings {
    // The default plain listener is for a proxy that names no listener at all.
    let addresses = match (raw.listen.take(), &raw.listen_tls) {
        (Some(listen), _) => listen.into_vec(),
        (None, Some(_)) => Vec::new(),
        (None, None) => vec![DEFAULT_LISTEN.to_string()],
    };
    let listen = listen_addresses(ctx, addresses, node, "listen");
    let listen_tls = listen_addresses(
        ctx,
        raw.listen_tls
            .take()
            .map(raw::OneOrMany::into_vec)
            .unwrap_or_default(),
        node,
        "listen_tls",
    );
    let at = edge::At {
        node,
        path: vec!["proxy".to_string()],
    };
    let tls_at = edge::At {
        node,
        path: vec!["proxy".to_string(), "tls".to_string()],
    };
    let tls = raw.tls.take().map(|t| edge::tls(ctx, t, &tls_at, dir));
    let hsts = edge::hsts(ctx, raw.hsts.take(), &at);
    let trusted_proxies = edge::networks(ctx, &raw.trusted_proxies, &at, "trusted_proxies");
    let redirect_http = raw.redirect_http.unwrap_or(false);
    tls_consistency(ctx, node, &listen, &listen_tls, tls.as_ref(), redirect_http);
    // HSTS by default for real certificates; not for a development
    // certificate, where it would pin every localhost port to https.
    let production = tls
        .as_ref()
        .is_some_and(|t| !t.certificates.is_empty() || t.acme.is_some());
    let hsts = hsts.unwrap_or(if production { 63_072_000 } else { 0 });
    let mut routes = Vec::new();
    for (i, r) in raw.routes.into_iter().enumerate() {
        let at = ["proxy".to_string(), "routes".to_string(), i.to_string()];
        if let Some(route) = route(ctx, r, node, &at, dir) {
            routes.push(route);
        }
    }
    let t = raw.timeouts;
    let d = ProxyTimeouts::default();
    ProxySettings {
        listen,
        listen_tls,
        tls,
        redirect_http,
        hsts,
        trusted_proxies,
        routes,
        health_path: raw.health_path.flatten(),
        metrics_path: raw.metrics_path.flatten(),
        access_log: raw.access_log.unwrap_or(true),
        max_body_size: raw.max_body_size.unwrap_or(ByteSize(10 * 1024 * 1024)),
        max_header_size: raw.max_header_size.unwrap_or(ByteSize(64 * 1024)),
        timeouts: ProxyTimeouts {
            header_read: t.header_read.unwrap_or(d.header_read),
            idle: t.idle.unwrap_or(d.idle),
            connect: t.connect.unwrap_or(d.connect),
            response: t.response.unwrap_or(d.response),
            websocket_idle: t.websocket_idle.unwrap_or(d.websocket_idle),
        },
    }
}

/// Each address of `listen` or `listen_tls`, normalized; errors at their line.
fn listen_addresses(
    ctx: &mut Ctx<'_>,
    addresses: Vec<String>,
    node: &Node,
    key: &str,
) -> Vec<String> {
    let mut listen = Vec::new();
    for (i, address) in addresses.into_iter().enumerate() {
        match super::normalize_listen(&address) {
            Some(a) => listen.push(a),
            None => ctx.sink.push(
                Diagnostic::error(
                    DiagnosticKind::InvalidValue,
                    node.span_at(&["proxy", key, &i.to_string()]),
                    format!("x-berth.proxy.{key}: {address:?} is not an address to listen on"),
                )
                .with_help("write HOST:PORT (\"127.0.0.1:8080\", \"[::1]:8080\") or :PORT for every interface"),
            ),
        }
    }
    listen
}

/// TLS listeners need certificates and certificates need TLS listeners;
/// redirecting to https needs somewhere to redirect to; an http-01 ACME
/// challenge needs a plain listener.
fn tls_consistency(
    ctx: &mut Ctx<'_>,
    node: &Node,
    listen: &[String],
    listen_tls: &[String],
    tls: Option<&TlsSettings>,
    redirect_http: bool,
) {
    let mut error = |key: &[&str], message: &str, help: &str| {
        ctx.sink.push(
            Diagnostic::error(
                DiagnosticKind::MissingKey,
                node.span_at(&[&["proxy"][..], key].concat()),
                message.to_string(),
            )
            .with_help(help),
        );
    };
    match (listen_tls.is_empty(), tls) {
        (false, None) => error(
            &["listen_tls"],
            "x-berth.proxy.listen_tls has no certificate to serve",
            "add `tls:` with `certificates`, `acme` or `self_signed: true`",
        ),
        (true, Some(_)) => error(
            &["tls"],
            "x-berth.proxy.tls is set but no TLS listener serves it",
            "add `listen_tls: [\"0.0.0.0:443\"]`",
        ),
        _ => {}
    }
    if redirect_http && listen_tls.is_empty() {
        error(
            &["redirect_http"],
            "x-berth.proxy.redirect_http redirects to https, but there is no `listen_tls`",
            "add `listen_tls: [\"0.0.0.0:443\"]` with `tls:`",
        );
    }
    if let Some(acme) = tls.and_then(|t| t.acme.as_ref())
        && acme.challenge == AcmeChallenge::Http01
        && listen.is_empty()
    {
        error(
            &["tls", "acme"],
            "x-berth.proxy.tls.acme: the http-01 challenge needs a plain listener (port 80), and `listen` is empty",
            "add `listen: [\"0.0.0.0:80\"]`, or use `challenge: tls-alpn-01`",
        );
    }
}

fn route(
    ctx: &mut Ctx<'_>,
    mut r: raw::Route,
    node: &Node,
    at: &[String],
    dir: &Path,
) -> Option<Route> {
    let span = node.span_at(at);
    let place = crate::schema::display_path(&[&["x-berth".to_string()][..], at].concat());
    if !r.path.starts_with('/') {
        ctx.sink.push(Diagnostic::error(
            DiagnosticKind::InvalidValue,
            node.span_at(&[at, &["path".to_string()]].concat()),
            format!("{place}.path must start with '/', got {:?}", r.path),
        ));
        return None;
    }
    let policy = edge::policy(
        ctx,
        &mut r,
        &edge::At {
            node,
            path: at.to_vec(),
        },
    );
    let target = match (r.service, r.static_dir) {
        (Some(service), None) => {
            if !r.env_js.is_empty() || r.spa {
                ctx.sink.push(Diagnostic::error(
                    DiagnosticKind::Conflict,
                    span,
                    format!("{place}: `spa` and `env_js` apply to `static` routes, not to service routes"),
                ));
            }
            RouteTarget::Service {
                service,
                port: r.port,
                strip_prefix: r.strip_prefix,
                lb: r.lb,
            }
        }
        (None, Some(root)) => RouteTarget::Static {
            root: crate::context::absolute(dir, Path::new(&root)),
            spa: r.spa,
            index: r.index.unwrap_or_else(|| "index.html".to_string()),
            env_js: r.env_js,
        },
        (Some(_), Some(_)) => {
            ctx.sink.push(Diagnostic::error(
                DiagnosticKind::Conflict,
                span,
                format!("{place}: a route sends to a `service` or serves `static` files, not both"),
            ));
            return None;
        }
        (None, None) => {
            ctx.sink.push(
                Diagnostic::error(
                    DiagnosticKind::MissingKey,
                    span,
                    format!("{place}: the route has no target"),
                )
                .with_help("add `service: NAME` or `static: DIR`"),
            );
            return None;
        }
    };
    Some(Route {
        path: r.path,
        host: r.host,
        target,
        max_body_size: r.max_body_size,
        timeout: r.timeout,
        policy,
    })
}

pub(crate) fn service(ctx: &mut Ctx<'_>, name: &str, node: &Node) -> ServiceSettings {
    let raw: raw::Service = match from_node(node) {
        Ok(r) => r,
        Err(e) => {
            super::bind_error(ctx, &["services", name, "x-berth"], e, node.span);
            return ServiceSettings::default();
        }
    };
    let place = format!("services.{name}.x-berth");
    let build = match raw.build {
        None => None,
        Some(raw::OneOrMany::One(s)) if !s.trim().is_empty() => Some(BuildCommand::Shell(s)),
        Some(raw::OneOrMany::Many(v)) if !v.is_empty() => Some(BuildCommand::Argv(v)),
        Some(_) => {
            ctx.sink.error(
                DiagnosticKind::InvalidValue,
                node.span_at(&["build"]),
                format!("{place}.build is empty"),
            );
            None
        }
    };
    let ready = raw.ready.and_then(|r| ready(ctx, r, node, &place));
    let kube = kube(ctx, raw.kube, node, &place);
    let backup = super::backup::service(ctx, name, node);
    ServiceSettings {
        backup,
        build,
        ready,
        bind: raw.bind,
        runtime: raw.runtime,
        deploy_timeout: raw.deploy.timeout,
        stateful: raw.stateful.unwrap_or(false),
        kube,
    }
}

/// `x-berth.kube`: an image that names something, a size above zero.
fn kube(ctx: &mut Ctx<'_>, raw: raw::KubeRaw, node: &Node, place: &str) -> KubeSettings {
    if let Some(image) = &raw.image
        && image.trim().is_empty()
    {
        ctx.sink.push(
            Diagnostic::error(
                DiagnosticKind::InvalidValue,
                node.span_at(&["kube", "image"]),
                format!("{place}.kube.image is empty"),
            )
            .with_help("name the image to run in the cluster, e.g. registry.example.com/api:1.0"),
        );
    }
    let storage = raw.storage.and_then(|value| {
        let size = match &value {
            serde_json::Value::String(s) => kube_storage(s),
            serde_json::Value::Number(n) => n.as_u64().map(ByteSize).filter(|b| b.0 > 0),
            _ => None,
        };
        if size.is_none() {
            ctx.sink.push(
                Diagnostic::error(
                    DiagnosticKind::InvalidValue,
                    node.span_at(&["kube", "storage"]),
                    format!("{place}.kube.storage: {value} is not a size above zero"),
                )
                .with_help("write a size such as 10Gi, 512Mi, 20g or a byte count"),
            );
        }
        size
    });
    KubeSettings {
        image: raw.image.filter(|i| !i.trim().is_empty()),
        storage,
        service_type: raw.service_type,
    }
}

/// A size as Compose writes it (`20g`, `512m`, `1GiB`) or as Kubernetes
/// does with a binary suffix (`10Gi`, `512Mi`); `None` when it is neither,
/// or zero.
pub(crate) fn kube_storage(text: &str) -> Option<ByteSize> {
    let text = text.trim();
    let binary = ["Ki", "Mi", "Gi", "Ti", "Pi"]
        .iter()
        .any(|suffix| text.ends_with(suffix));
    let size = if binary {
        ByteSize::parse(&format!("{text}B")).ok()
    } else {
        ByteSize::parse(text).ok()
    };
    size.filter(|s| s.0 > 0)
}

fn ready(ctx: &mut Ctx<'_>, r: raw::ReadyRaw, node: &Node, place: &str) -> Option<Ready> {
    let span = node.span_at(&["ready"]);
    let mut probes = Vec::new();
    if let Some(path) = r.http {
        if !path.starts_with('/') {
            ctx.sink.error(
                DiagnosticKind::InvalidValue,
                node.span_at(&["ready", "http"]),
                format!("{place}.ready.http must be a path starting with '/', got {path:?}"),
            );
        }
        probes.push(ReadyProbe::Http(path));
    }
    if r.tcp == Some(true) {
        probes.push(ReadyProbe::Tcp);
    }
    if let Some(pattern) = r.log {
        if let Err(e) = regex::Regex::new(&pattern) {
            ctx.sink.error(
                DiagnosticKind::InvalidValue,
                node.span_at(&["ready", "log"]),
                format!("{place}.ready.log is not a valid regex: {e}"),
            );
        }
        probes.push(ReadyProbe::Log(pattern));
    }
    if probes.len() != 1 {
        ctx.sink.push(
            Diagnostic::error(
                DiagnosticKind::InvalidValue,
                span,
                format!(
                    "{place}.ready needs exactly one probe, found {}",
                    probes.len()
                ),
            )
            .with_help("use one of `http: /path`, `tcp: true` or `log: REGEX`"),
        );
        return None;
    }
    Some(Ready {
        probe: probes.remove(0),
        interval: r
            .interval
            .unwrap_or(Duration(std::time::Duration::from_millis(25))),
        timeout: r
            .timeout
            .unwrap_or(Duration(std::time::Duration::from_secs(1))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::normalize_listen;

    use crate::testsupport::load_text as load;

    #[test]
    fn kube_settings_are_read() {
        let loaded = load(
            "services:\n  api:\n    command: [x]\n    x-berth:\n      stateful: true\n      kube: {image: reg/api:1, storage: 10Gi, service_type: LoadBalancer}\n",
        )
        .map_err(|d| d.render(false))
        .unwrap();
        let settings = &loaded.project.services["api"].settings;
        assert!(settings.stateful);
        assert_eq!(
            settings.kube,
            KubeSettings {
                image: Some("reg/api:1".into()),
                storage: Some(ByteSize(10 << 30)),
                service_type: Some(crate::xberth::ServiceType::LoadBalancer),
            }
        );
    }

    #[test]
    fn bad_kube_settings_are_errors_at_their_line() {
        let errors = load(
            "services:\n  api:\n    command: [x]\n    x-berth:\n      kube:\n        image: \"\"\n        storage: lots\n",
        )
        .err()
        .unwrap()
        .errors;
        let found: Vec<(u32, &str)> = errors
            .iter()
            .map(|e| (e.span.line, e.message.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (6, "services.api.x-berth.kube.image is empty"),
                (
                    7,
                    "services.api.x-berth.kube.storage: \"lots\" is not a size above zero"
                ),
            ]
        );
        let errors = load(
            "services:\n  api:\n    image: x\n    x-berth:\n      kube: {service_type: Ingress, size: 1}\n",
        )
        .err()
        .unwrap()
        .errors;
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(errors.iter().all(|e| e.span.line == 5), "{errors:#?}");
    }

    #[test]
    fn kube_storage_takes_compose_and_kubernetes_sizes() {
        let gib = 1024 * 1024 * 1024;
        assert_eq!(kube_storage("10Gi"), Some(ByteSize(10 * gib)));
        assert_eq!(kube_storage("10g"), Some(ByteSize(10 * gib)));
        assert_eq!(kube_storage("512Mi"), Some(ByteSize(512 * 1024 * 1024)));
        assert_eq!(kube_storage("1GiB"), Some(ByteSize(gib)));
        assert_eq!(kube_storage("0"), None);
        assert_eq!(kube_storage("lots"), None);
        assert_eq!(kube_storage("10Gix"), None);
        assert_eq!(kube_storage(""), None);
    }

    #[test]
    fn listen_addresses_normalize() {
        assert_eq!(normalize_listen(":80").as_deref(), Some("0.0.0.0:80"));
        assert_eq!(normalize_listen("8080").as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(
            normalize_listen("[::1]:8443").as_deref(),
            Some("[::1]:8443")
        );
        assert_eq!(
            normalize_listen("localhost:9").as_deref(),
            Some("127.0.0.1:9")
        );
        assert_eq!(normalize_listen("nope"), None);
        assert_eq!(normalize_listen("1.2.3.4:99999"), None);
    }
}
