//! `x-berth.proxy` routes to an Ingress (`networking.k8s.io/v1`).
//!
//! Each service route is a `Prefix` path (with its `host:`, if any) to the
//! service's Service and port. What an Ingress cannot say is a warning:
//! static files (an image must serve them), berth's own `/health` and
//! `/metrics`, load balancing, per-route limits. `strip_prefix` needs the
//! controller's help: with `--ingress-class nginx` (ingress-nginx) or
//! `kong` those routes go to a second Ingress carrying that controller's
//! rewrite annotation; with any other class, a warning.
//!
//! `x-berth.proxy.tls` becomes the Ingress's `tls` section: a
//! `kubernetes.io/tls` Secret per certificate entry (named, not written:
//! the warning says how to create it from the files) and one for the ACME
//! domains (cert-manager's to fill; the warning says which annotation asks
//! it). `redirect_http` maps to ingress-nginx's `ssl-redirect`.

use std::collections::BTreeMap;

use berth_compose::{LoadBalancing, ProxySettings, ProxyTimeouts, Route, RouteTarget};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};

use crate::context::{Ctx, component};
use crate::model::Object;
use crate::names::{dns_label, is_dns_subdomain};
use crate::network::declared;
use crate::units::nginx_size;

/// The controllers whose annotations the export knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Controller {
    Nginx,
    Kong,
    Other,
}

/// berth's own default for `x-berth.proxy.max_body_size` (10 MiB).
const DEFAULT_MAX_BODY: u64 = 10 << 20;

/// Paths of one Ingress, by host (`None`: any host), in route order.
type Rules = Vec<(Option<String>, Vec<HTTPIngressPath>)>;

fn add(rules: &mut Rules, host: Option<String>, path: HTTPIngressPath) {
    match rules.iter_mut().find(|(h, _)| *h == host) {
        Some((_, paths)) => paths.push(path),
        None => rules.push((host, vec![path])),
    }
}

/// The Ingress objects of the project's routes.
pub(crate) fn ingresses(ctx: &mut Ctx<'_>) -> Vec<Object> {
    let Some(proxy) = ctx.project.settings.proxy.as_ref() else {
        return Vec::new();
    };
    let controller = match ctx.options.ingress_class.as_deref() {
        Some("nginx") => Controller::Nginx,
        Some("kong") => Controller::Kong,
        _ => Controller::Other,
    };
    proxy_warnings(ctx, proxy, controller);
    let (plain, stripped) = rules(ctx, proxy, controller);
    let name = dns_label(&ctx.project.name, 52, false);
    let mut annotations = BTreeMap::new();
    if controller == Controller::Nginx {
        annotations.insert(
            "nginx.ingress.kubernetes.io/proxy-body-size".to_string(),
            nginx_size(proxy.max_body_size.0),
        );
    }
    let hosts: Vec<String> = plain
        .iter()
        .chain(&stripped)
        .filter_map(|(h, _)| h.clone())
        .collect();
    let tls = tls(ctx, proxy, &name, &hosts);
    if tls.is_some() && controller == Controller::Nginx {
        annotations.insert(
            "nginx.ingress.kubernetes.io/ssl-redirect".to_string(),
            proxy.redirect_http.to_string(),
        );
    }
    let mut out = Vec::new();
    if !plain.is_empty() {
        out.push(ingress(ctx, &name, plain, annotations.clone(), tls.clone()));
    }
    if !stripped.is_empty() {
        match controller {
            Controller::Nginx => {
                annotations.insert(
                    "nginx.ingress.kubernetes.io/use-regex".into(),
                    "true".into(),
                );
                annotations.insert(
                    "nginx.ingress.kubernetes.io/rewrite-target".into(),
                    "/$2".into(),
                );
            }
            Controller::Kong => {
                annotations.insert("konghq.com/strip-path".into(), "true".into());
            }
            Controller::Other => {}
        }
        out.push(ingress(
            ctx,
            &format!("{name}-strip-prefix"),
            stripped,
            annotations,
            tls,
        ));
    }
    out
}

/// The routes' paths by host: those that go as they are, and those whose
/// prefix the controller strips.
fn rules(ctx: &mut Ctx<'_>, proxy: &ProxySettings, controller: Controller) -> (Rules, Rules) {
    let mut plain: Rules = Vec::new();
    let mut stripped: Rules = Vec::new();
    for (i, route) in proxy.routes.iter().enumerate() {
        let place = format!("x-berth.proxy.routes[{i}]");
        let Some((path, strip)) = route_path(ctx, route, &place, controller) else {
            continue;
        };
        let host = route.host.clone().filter(|h| {
            let ok = is_dns_subdomain(h.trim_start_matches("*."))
                && h.parse::<std::net::IpAddr>().is_err();
            if !ok {
                ctx.warn(
                    format!("{place}.host"),
                    format!(
                        "{h:?} is not a DNS name an Ingress can match: the route matches any host"
                    ),
                );
            }
            ok
        });
        add(if strip { &mut stripped } else { &mut plain }, host, path);
    }
    (plain, stripped)
}

/// The warning for a `static` route: an Ingress serves no files.
fn static_warning(ctx: &mut Ctx<'_>, route: &Route, place: &str) {
    let RouteTarget::Static {
        root, spa, env_js, ..
    } = &route.target
    else {
        return;
    };
    let root = crate::storage::shown_path(ctx, &root.to_string_lossy());
    let extra = if env_js.is_empty() {
        ""
    } else {
        " and its /env-config.js"
    };
    let spa = if *spa { " as a single-page app" } else { "" };
    ctx.warn(
        place,
        format!(
            "{path} serves the files of {root}{extra}{spa}, which an Ingress cannot: build an \
             image that serves them (e.g. nginx with the files), add it as a service and route \
             {path} to it",
            path = route.path,
        ),
    );
}

/// What of a service route an Ingress leaves out: `lb`, the route's own
/// `max_body_size` and `timeout`, and its policies (headers, CORS, rate
/// limit, allow-list), which Ingress controllers each configure their way.
fn route_warnings(ctx: &mut Ctx<'_>, route: &Route, place: &str, lb: LoadBalancing) {
    if lb != LoadBalancing::RoundRobin {
        ctx.warn(
            format!("{place}.lb"),
            "left out: the Ingress controller balances as it is configured to",
        );
    }
    let policy = &route.policy;
    for (field, set) in [
        ("max_body_size", route.max_body_size.is_some()),
        ("timeout", route.timeout.is_some()),
        ("headers", policy.headers != Default::default()),
        ("security_headers", policy.security_headers.is_some()),
        ("cors", policy.cors.is_some()),
        ("rate_limit", policy.rate_limit.is_some()),
        ("allow", !policy.allow.is_empty()),
    ] {
        if set {
            ctx.warn(
                format!("{place}.{field}"),
                "left out: set it with your Ingress controller's annotations",
            );
        }
    }
}

/// The path of a service route, and whether it goes to the Ingress that
/// strips its prefix; `None` (with a warning) for what an Ingress cannot route.
fn route_path(
    ctx: &mut Ctx<'_>,
    route: &Route,
    place: &str,
    controller: Controller,
) -> Option<(HTTPIngressPath, bool)> {
    let RouteTarget::Service {
        service,
        port,
        strip_prefix,
        lb,
    } = &route.target
    else {
        static_warning(ctx, route, place);
        return None;
    };
    let target = ctx.project.services.get(service)?;
    let Some(port) = port.or_else(|| declared(target).first().map(|d| d.port)) else {
        ctx.warn(
            place,
            format!(
                "{service} declares no port: the route {} is left out",
                route.path
            ),
        );
        return None;
    };
    route_warnings(ctx, route, place, *lb);
    let strip = *strip_prefix && route.path != "/";
    if strip && controller == Controller::Other {
        ctx.warn(
            format!("{place}.strip_prefix"),
            format!(
                "an Ingress cannot strip {} by itself: requests reach {service} with the prefix; \
                 with --ingress-class nginx or kong berth writes that controller's rewrite annotation",
                route.path
            ),
        );
    }
    let (path, path_type) = if strip && controller == Controller::Nginx {
        (
            format!("{}(/|$)(.*)", route.path.trim_end_matches('/')),
            "ImplementationSpecific",
        )
    } else {
        (route.path.clone(), "Prefix")
    };
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: ctx.name(service),
            port: Some(ServiceBackendPort {
                number: Some(i32::from(port)),
                name: None,
            }),
        }),
        resource: None,
    };
    let path = HTTPIngressPath {
        backend,
        path: Some(path),
        path_type: path_type.into(),
    };
    Some((path, strip && controller != Controller::Other))
}

fn ingress(
    ctx: &Ctx<'_>,
    name: &str,
    rules: Rules,
    annotations: BTreeMap<String, String>,
    tls: Option<Vec<IngressTLS>>,
) -> Object {
    let mut metadata = ctx.meta(name, &ctx.instance, component::EDGE);
    metadata.annotations = (!annotations.is_empty()).then_some(annotations);
    let rules = rules
        .into_iter()
        .map(|(host, paths)| IngressRule {
            host,
            http: Some(HTTPIngressRuleValue { paths }),
        })
        .collect();
    Object::from(Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: ctx.options.ingress_class.clone(),
            rules: Some(rules),
            tls,
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    })
}

/// The Ingress's `tls` entries for `x-berth.proxy.tls`, with the warnings
/// that say what the cluster must provide; `hosts` are the routes' hosts.
fn tls(
    ctx: &mut Ctx<'_>,
    proxy: &ProxySettings,
    name: &str,
    hosts: &[String],
) -> Option<Vec<IngressTLS>> {
    let settings = proxy.tls.as_ref()?;
    let mut entries = Vec::new();
    let route_hosts = (!hosts.is_empty()).then(|| hosts.to_vec());
    for (i, files) in settings.certificates.iter().enumerate() {
        let secret = format!("{name}-tls-{i}");
        let cert = crate::storage::shown_path(ctx, &files.cert.to_string_lossy());
        let key = crate::storage::shown_path(ctx, &files.key.to_string_lossy());
        ctx.warn(
            format!("x-berth.proxy.tls.certificates[{i}]"),
            format!(
                "the Ingress serves the Secret {secret}; create it from the files: kubectl create secret tls {secret} --cert={cert} --key={key}"
            ),
        );
        entries.push(IngressTLS {
            hosts: route_hosts.clone(),
            secret_name: Some(secret),
        });
    }
    if let Some(acme) = &settings.acme {
        let secret = format!("{name}-acme-tls");
        ctx.warn(
            "x-berth.proxy.tls.acme",
            format!(
                "the cluster obtains the certificate, not berth: with cert-manager, annotate the Ingress with cert-manager.io/cluster-issuer: <your ACME issuer> and it fills the Secret {secret} for {}",
                acme.domains.join(", ")
            ),
        );
        entries.push(IngressTLS {
            hosts: Some(acme.domains.clone()),
            secret_name: Some(secret),
        });
    }
    if settings.self_signed {
        ctx.warn(
            "x-berth.proxy.tls.self_signed",
            "left out: the development certificate is for localhost; the Ingress controller's default certificate serves instead",
        );
    }
    if proxy.hsts > 0 {
        ctx.warn(
            "x-berth.proxy.hsts",
            "left out: set Strict-Transport-Security with your Ingress controller (ingress-nginx sends it by default)",
        );
    }
    (!entries.is_empty()).then_some(entries)
}

/// What of the proxy itself an Ingress does not do.
fn proxy_warnings(ctx: &mut Ctx<'_>, proxy: &ProxySettings, controller: Controller) {
    for (field, path) in [
        ("health_path", &proxy.health_path),
        ("metrics_path", &proxy.metrics_path),
    ] {
        if let Some(path) = path {
            ctx.warn(
                format!("x-berth.proxy.{field}"),
                format!("{path} is served by berth's proxy, not by an Ingress: left out"),
            );
        }
    }
    if proxy.max_body_size.0 != DEFAULT_MAX_BODY && controller != Controller::Nginx {
        ctx.warn(
            "x-berth.proxy.max_body_size",
            "left out: set the body size limit with your Ingress controller's annotations",
        );
    }
    if proxy.timeouts != ProxyTimeouts::default() {
        ctx.warn(
            "x-berth.proxy.timeouts",
            "left out: set timeouts with your Ingress controller's annotations",
        );
    }
}
