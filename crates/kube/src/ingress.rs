//! `x-berth.proxy` routes to an Ingress (`networking.k8s.io/v1`).
//!
//! Each service route is a `Prefix` path (with its `host:`, if any) to the
//! service's Service and port. What an Ingress cannot say is a warning:
//! static files (an image must serve them), berth's own `/health` and
//! `/metrics`, load balancing, per-route limits. `strip_prefix` needs the
//! controller's help: with `--ingress-class nginx` (ingress-nginx) or
//! `kong` those routes go to a second Ingress carrying that controller's
//! rewrite annotation; with any other class, a warning.

use std::collections::BTreeMap;

use berth_compose::{LoadBalancing, ProxySettings, ProxyTimeouts, Route, RouteTarget};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
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
    let name = dns_label(&ctx.project.name, 52, false);
    let mut annotations = BTreeMap::new();
    if controller == Controller::Nginx {
        annotations.insert(
            "nginx.ingress.kubernetes.io/proxy-body-size".to_string(),
            nginx_size(proxy.max_body_size.0),
        );
    }
    let mut out = Vec::new();
    if !plain.is_empty() {
        out.push(ingress(ctx, &name, plain, annotations.clone()));
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
        ));
    }
    out
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

/// What of a service route an Ingress leaves out: `lb`, and the route's
/// own `max_body_size` and `timeout`.
fn route_warnings(ctx: &mut Ctx<'_>, route: &Route, place: &str, lb: LoadBalancing) {
    if lb != LoadBalancing::RoundRobin {
        ctx.warn(
            format!("{place}.lb"),
            "left out: the Ingress controller balances as it is configured to",
        );
    }
    for (field, set) in [
        ("max_body_size", route.max_body_size.is_some()),
        ("timeout", route.timeout.is_some()),
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
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    })
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
