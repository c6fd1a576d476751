//! `x-berth.proxy`'s production-edge settings as written to [`TlsSettings`]
//! and [`RoutePolicy`], every error at its line: certificate files that are
//! missing or hold no PEM certificate or key, ACME names that are not DNS
//! names, rates, networks, header names and CORS origins that do not parse.
//! (Whether a key matches its certificate is the proxy's to check, with
//! `CertificateFiles::written_at` to point back here.)

use std::path::Path;

use serde_json::Value as Json;

use crate::context::Ctx;
use crate::diag::{Diagnostic, DiagnosticKind, Span};
use crate::units::Duration;
use crate::xberth::{
    AcmeChallenge, AcmeSettings, CertificateFiles, Cors, HeaderRules, IpNet, LETS_ENCRYPT, RateKey,
    RateLimit, RoutePolicy, TlsSettings, TlsVersion, parse_network, raw,
};
use crate::yaml::Node;

/// Where a setting is, as a YAML path under `x-berth` and as a display name.
pub(crate) struct At<'a> {
    pub node: &'a Node,
    pub path: Vec<String>,
}

impl At<'_> {
    fn span(&self, more: &[&str]) -> Span {
        let mut path = self.path.clone();
        path.extend(more.iter().map(|s| (*s).to_string()));
        self.node.span_at(&path)
    }

    fn name(&self, more: &[&str]) -> String {
        let mut path = vec!["x-berth".to_string()];
        path.extend(self.path.iter().cloned());
        path.extend(more.iter().map(|s| (*s).to_string()));
        crate::schema::display_path(&path)
    }

    fn error(&self, ctx: &mut Ctx<'_>, more: &[&str], message: String, help: Option<&str>) {
        let mut d = Diagnostic::error(DiagnosticKind::InvalidValue, self.span(more), message);
        if let Some(help) = help {
            d = d.with_help(help);
        }
        ctx.sink.push(d);
    }
}

/// `tls`, checked; `None` when it has nothing to serve with.
pub(crate) fn tls(ctx: &mut Ctx<'_>, raw: raw::Tls, at: &At<'_>, dir: &Path) -> TlsSettings {
    let mut certificates = Vec::new();
    for (i, c) in raw.certificates.into_iter().enumerate() {
        let index = i.to_string();
        let entry = ["certificates", index.as_str()];
        let span = at.span(&entry);
        let written_at = match ctx.sources.path(span.file) {
            Some(file) => format!("{}:{}", file.display(), span.line),
            None => at.name(&entry),
        };
        let cert = crate::context::absolute(dir, Path::new(&c.cert));
        let key = crate::context::absolute(dir, Path::new(&c.key));
        pem_file(
            ctx,
            at,
            &[&entry[..], &["cert"]].concat(),
            &cert,
            Pem::Certificate,
        );
        pem_file(ctx, at, &[&entry[..], &["key"]].concat(), &key, Pem::Key);
        certificates.push(CertificateFiles {
            cert,
            key,
            written_at,
        });
    }
    let acme = raw.acme.and_then(|a| acme(ctx, a, at, dir));
    let min_version = match raw.min_version {
        None => TlsVersion::Tls12,
        Some(v) => match version_text(&v).as_deref() {
            Some("1.2") => TlsVersion::Tls12,
            Some("1.3") => TlsVersion::Tls13,
            _ => {
                at.error(
                    ctx,
                    &["min_version"],
                    format!(
                        "{}: {v} is not a TLS version berth offers",
                        at.name(&["min_version"])
                    ),
                    Some("write \"1.2\" (the default: TLS 1.2 and 1.3) or \"1.3\""),
                );
                TlsVersion::Tls12
            }
        },
    };
    if certificates.is_empty() && acme.is_none() && !raw.self_signed {
        at.error(
            ctx,
            &[],
            format!("{} has no certificate to serve", at.name(&[])),
            Some("add `certificates: [{cert: FILE, key: FILE}]`, `acme: {domains: [...]}` or `self_signed: true`"),
        );
    }
    TlsSettings {
        certificates,
        acme,
        self_signed: raw.self_signed,
        min_version,
    }
}

fn version_text(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.trim().to_string()),
        Json::Number(n) => n.as_f64().map(|f| format!("{f:.1}")),
        _ => None,
    }
}

#[derive(Clone, Copy)]
enum Pem {
    Certificate,
    Key,
}

/// A certificate or key file that exists, can be read and holds a PEM block
/// of its kind.
fn pem_file(ctx: &mut Ctx<'_>, at: &At<'_>, path: &[&str], file: &Path, kind: Pem) {
    let what = match kind {
        Pem::Certificate => "certificate",
        Pem::Key => "private key",
    };
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => {
            at.error(
                ctx,
                path,
                format!(
                    "{}: cannot read the {what} {}: {}",
                    at.name(path),
                    file.display(),
                    crate::context::io_reason(&e)
                ),
                None,
            );
            return;
        }
    };
    let found = match kind {
        Pem::Certificate => text.contains("-----BEGIN CERTIFICATE-----"),
        Pem::Key => text
            .lines()
            .any(|l| l.starts_with("-----BEGIN ") && l.trim_end().ends_with("PRIVATE KEY-----")),
    };
    if !found {
        let help = match kind {
            Pem::Certificate => {
                "the file must hold the chain as PEM: -----BEGIN CERTIFICATE----- blocks, the leaf first"
            }
            Pem::Key => {
                "the file must hold the key as PEM: -----BEGIN PRIVATE KEY----- (PKCS#8), RSA PRIVATE KEY or EC PRIVATE KEY"
            }
        };
        at.error(
            ctx,
            path,
            format!("{}: {} holds no PEM {what}", at.name(path), file.display()),
            Some(help),
        );
    }
}

/// At least one domain, each a DNS name.
fn acme_domains(ctx: &mut Ctx<'_>, domains: &[String], at: &At<'_>) -> bool {
    let mut ok = true;
    if domains.is_empty() {
        at.error(
            ctx,
            &["acme"],
            format!(
                "{} has no domains to order a certificate for",
                at.name(&["acme"])
            ),
            Some("add `domains: [example.org, www.example.org]`"),
        );
        ok = false;
    }
    for (i, d) in domains.iter().enumerate() {
        if !dns_name(d) {
            at.error(
                ctx,
                &["acme", "domains", &i.to_string()],
                format!("{}: {d:?} is not a DNS name", at.name(&["acme", "domains"])),
                Some("ACME certificates are for names such as example.org or *.example.org, not addresses"),
            );
            ok = false;
        }
    }
    ok
}

fn acme(ctx: &mut Ctx<'_>, a: raw::Acme, at: &At<'_>, dir: &Path) -> Option<AcmeSettings> {
    let mut ok = acme_domains(ctx, &a.domains, at);
    if let Some(email) = &a.email
        && !email.contains('@')
    {
        at.error(
            ctx,
            &["acme", "email"],
            format!(
                "{}: {email:?} is not an email address",
                at.name(&["acme", "email"])
            ),
            None,
        );
        ok = false;
    }
    let directory = a.directory.unwrap_or_else(|| LETS_ENCRYPT.to_string());
    if !(directory.starts_with("https://") || directory.starts_with("http://")) {
        at.error(
            ctx,
            &["acme", "directory"],
            format!(
                "{}: {directory:?} is not a URL",
                at.name(&["acme", "directory"])
            ),
            Some(
                "write the CA's directory URL, e.g. https://acme-v02.api.letsencrypt.org/directory",
            ),
        );
        ok = false;
    }
    let challenge = match a.challenge.as_deref() {
        None | Some("http-01") => AcmeChallenge::Http01,
        Some("tls-alpn-01") => AcmeChallenge::TlsAlpn01,
        Some(other) => {
            at.error(
                ctx,
                &["acme", "challenge"],
                format!(
                    "{}: {other:?} is not a challenge berth answers",
                    at.name(&["acme", "challenge"])
                ),
                Some("use http-01 (a plain listener on port 80) or tls-alpn-01 (a TLS listener on port 443)"),
            );
            ok = false;
            AcmeChallenge::Http01
        }
    };
    let ca_root = a
        .ca_root
        .map(|r| crate::context::absolute(dir, Path::new(&r)));
    if let Some(root) = &ca_root {
        pem_file(ctx, at, &["acme", "ca_root"], root, Pem::Certificate);
    }
    ok.then_some(AcmeSettings {
        email: a.email,
        domains: a.domains,
        directory,
        challenge,
        ca_root,
    })
}

/// A DNS name a CA would issue for: labels of letters, digits and hyphens,
/// a leading `*.` allowed.
fn dns_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.parse::<std::net::IpAddr>().is_err()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `hsts`: seconds, or a duration.
pub(crate) fn hsts(ctx: &mut Ctx<'_>, value: Option<Json>, at: &At<'_>) -> Option<u64> {
    let value = value?;
    let seconds = match &value {
        Json::Number(n) => n.as_u64(),
        Json::String(s) => s
            .trim()
            .parse::<u64>()
            .ok()
            .or_else(|| Duration::parse(s).ok().map(|d| d.0.as_secs())),
        Json::Bool(false) => Some(0),
        _ => None,
    };
    if seconds.is_none() {
        at.error(
            ctx,
            &["hsts"],
            format!("{}: {value} is not a max-age", at.name(&["hsts"])),
            Some("write seconds (63072000 is two years) or a duration such as 8760h; 0 turns HSTS off"),
        );
    }
    seconds
}

/// A list of networks (`allow`, `trusted_proxies`), each checked.
pub(crate) fn networks(ctx: &mut Ctx<'_>, list: &[String], at: &At<'_>, key: &str) -> Vec<IpNet> {
    let mut nets = Vec::with_capacity(list.len());
    for (i, text) in list.iter().enumerate() {
        match parse_network(text) {
            Ok(net) => nets.push(net),
            Err(e) => at.error(
                ctx,
                &[key, &i.to_string()],
                format!("{}: {e}", at.name(&[key])),
                None,
            ),
        }
    }
    nets
}

/// A route's `headers`, `security_headers`, `cors`, `rate_limit` and `allow`.
pub(crate) fn policy(ctx: &mut Ctx<'_>, r: &mut raw::Route, at: &At<'_>) -> RoutePolicy {
    let headers = std::mem::take(&mut r.headers);
    let mut set = indexmap::IndexMap::new();
    for (name, value) in headers.set {
        let ok_name = header_name(&name);
        if !ok_name {
            at.error(
                ctx,
                &["headers", "set", &name],
                format!(
                    "{}: {name:?} is not a header name",
                    at.name(&["headers", "set"])
                ),
                None,
            );
        } else if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            at.error(
                ctx,
                &["headers", "set", &name],
                format!(
                    "{}.{name}: a header value cannot hold a line break",
                    at.name(&["headers", "set"])
                ),
                None,
            );
        } else {
            set.insert(name.to_ascii_lowercase(), value);
        }
    }
    let mut remove = Vec::new();
    for (i, name) in headers.remove.iter().enumerate() {
        if header_name(name) {
            remove.push(name.to_ascii_lowercase());
        } else {
            at.error(
                ctx,
                &["headers", "remove", &i.to_string()],
                format!(
                    "{}: {name:?} is not a header name",
                    at.name(&["headers", "remove"])
                ),
                None,
            );
        }
    }
    let cors = r.cors.take().and_then(|c| cors(ctx, c, at));
    let rate_limit = r.rate_limit.take().and_then(|l| rate_limit(ctx, l, at));
    let allow = networks(ctx, &r.allow, at, "allow");
    RoutePolicy {
        headers: HeaderRules { set, remove },
        security_headers: r.security_headers,
        cors,
        rate_limit,
        allow,
    }
}

/// An RFC 9110 token.
fn header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn cors(ctx: &mut Ctx<'_>, c: raw::Cors, at: &At<'_>) -> Option<Cors> {
    let mut ok = true;
    if c.origins.is_empty() {
        at.error(ctx, &["cors"], format!("{} allows no origin", at.name(&["cors"])), Some("add `origins: [\"https://app.example.org\"]` (or [\"*\"] for any, without credentials)"));
        ok = false;
    }
    for (i, origin) in c.origins.iter().enumerate() {
        let any = origin == "*";
        if any && c.credentials {
            at.error(
                ctx,
                &["cors", "origins", &i.to_string()],
                format!(
                    "{}: \"*\" cannot go with `credentials: true`",
                    at.name(&["cors", "origins"])
                ),
                Some("browsers refuse credentials for any origin: list the origins"),
            );
            ok = false;
        } else if !any && !origin_ok(origin) {
            at.error(
                ctx,
                &["cors", "origins", &i.to_string()],
                format!(
                    "{}: {origin:?} is not an origin",
                    at.name(&["cors", "origins"])
                ),
                Some("an origin is scheme://host[:port], with no path: https://app.example.org"),
            );
            ok = false;
        }
    }
    let methods = c
        .methods
        .unwrap_or_else(|| vec!["GET".into(), "HEAD".into(), "POST".into()]);
    for (i, m) in methods.iter().enumerate() {
        if !header_name(m) {
            at.error(
                ctx,
                &["cors", "methods", &i.to_string()],
                format!("{}: {m:?} is not a method", at.name(&["cors", "methods"])),
                None,
            );
            ok = false;
        }
    }
    for (key, list) in [
        ("headers", &c.headers),
        ("expose_headers", &c.expose_headers),
    ] {
        for (i, h) in list.iter().enumerate() {
            if !header_name(h) {
                at.error(
                    ctx,
                    &["cors", key, &i.to_string()],
                    format!("{}: {h:?} is not a header name", at.name(&["cors", key])),
                    None,
                );
                ok = false;
            }
        }
    }
    let lower = |v: Vec<String>| v.into_iter().map(|s| s.to_ascii_lowercase()).collect();
    ok.then(|| Cors {
        origins: c.origins,
        methods: methods
            .into_iter()
            .map(|m| m.to_ascii_uppercase())
            .collect(),
        headers: lower(c.headers),
        expose_headers: lower(c.expose_headers),
        credentials: c.credentials,
        max_age: c.max_age,
    })
}

/// `scheme://host[:port]` with nothing after.
fn origin_ok(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        && !rest.is_empty()
        && !rest.contains('/')
        && !rest.contains('?')
        && !rest.contains('#')
}

fn rate_limit(ctx: &mut Ctx<'_>, l: raw::RateLimit, at: &At<'_>) -> Option<RateLimit> {
    let rate = match l.rate.parse::<crate::xberth::Rate>() {
        Ok(rate) => rate,
        Err(e) => {
            at.error(
                ctx,
                &["rate_limit", "rate"],
                format!("{}: {e}", at.name(&["rate_limit", "rate"])),
                None,
            );
            return None;
        }
    };
    let key = match l.key.as_deref().map(str::trim) {
        None | Some("client_ip") => RateKey::ClientIp,
        Some(k) => match k.strip_prefix("header:").map(str::trim) {
            Some(h) if header_name(h) => RateKey::Header(h.to_ascii_lowercase()),
            _ => {
                at.error(
                    ctx,
                    &["rate_limit", "key"],
                    format!("{}: {k:?} is not a key", at.name(&["rate_limit", "key"])),
                    Some("use client_ip (the default) or header:NAME, e.g. header:X-Api-Key"),
                );
                return None;
            }
        },
    };
    Some(RateLimit {
        rate,
        // By default a client may spend one period's worth at once.
        burst: l.burst.unwrap_or(rate.count),
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xberth::{ProxySettings, Rate};

    use crate::testsupport::load_text_in as load;

    fn proxy(dir: &Path, text: &str) -> ProxySettings {
        let loaded = load(dir, text).map_err(|d| d.render(false)).unwrap();
        loaded.project.settings.proxy.unwrap()
    }

    /// `(line, message)` of every error.
    fn errors(dir: &Path, text: &str) -> Vec<(u32, String)> {
        load(dir, text)
            .err()
            .unwrap()
            .errors
            .into_iter()
            .map(|e| (e.span.line, e.message))
            .collect()
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("berth-edge-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const SERVICE: &str = "services:\n  api:\n    command: [x]\n";

    #[test]
    fn the_contract_example_reads() {
        let dir = scratch("contract");
        std::fs::write(
            dir.join("site.pem"),
            "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("site.key"),
            "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("ca.pem"),
            "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let p = proxy(
            &dir,
            &format!(
                "{SERVICE}x-berth:\n  proxy:\n    listen: [\"0.0.0.0:80\"]\n    listen_tls: [\":443\"]\n    tls:\n      certificates:\n        - {{cert: ./site.pem, key: ./site.key}}\n      acme:\n        email: ops@example.org\n        domains: [example.org, www.example.org]\n        directory: https://localhost:14000/dir\n        challenge: tls-alpn-01\n        ca_root: ./ca.pem\n      min_version: 1.3\n    redirect_http: true\n    trusted_proxies: [10.0.0.0/8, 192.168.1.1]\n    routes:\n      - path: /api\n        service: api\n        headers: {{set: {{X-Frame-Options: DENY}}, remove: [Server]}}\n        security_headers: true\n        cors: {{origins: [\"https://app.example.org\"], methods: [get, POST], headers: [Content-Type], credentials: true, max_age: 10m}}\n        rate_limit: {{rate: 10/s, burst: 20, key: \"header:X-Api-Key\"}}\n        allow: [127.0.0.0/8, \"::1\"]\n"
            ),
        );
        assert_eq!(p.listen, ["0.0.0.0:80"]);
        assert_eq!(p.listen_tls, ["0.0.0.0:443"]);
        assert!(p.redirect_http);
        assert_eq!(p.hsts, 63_072_000, "real certificates get HSTS by default");
        assert_eq!(p.trusted_proxies.len(), 2);
        let tls = p.tls.unwrap();
        assert_eq!(tls.certificates[0].cert, dir.join("site.pem"));
        assert_eq!(tls.certificates[0].written_at, "-:10");
        assert_eq!(tls.min_version, TlsVersion::Tls13);
        let acme = tls.acme.unwrap();
        assert_eq!(acme.challenge, AcmeChallenge::TlsAlpn01);
        assert_eq!(acme.ca_root, Some(dir.join("ca.pem")));
        let policy = &p.routes[0].policy;
        assert_eq!(policy.headers.set["x-frame-options"], "DENY");
        assert_eq!(policy.headers.remove, ["server"]);
        assert_eq!(policy.security_headers, Some(true));
        let cors = policy.cors.as_ref().unwrap();
        assert_eq!(cors.methods, ["GET", "POST"]);
        assert_eq!(cors.headers, ["content-type"]);
        assert_eq!(cors.max_age.unwrap().0.as_secs(), 600);
        let limit = policy.rate_limit.as_ref().unwrap();
        assert_eq!(limit.rate, "10/s".parse::<Rate>().unwrap());
        assert_eq!(limit.burst, 20);
        assert_eq!(limit.key, RateKey::Header("x-api-key".into()));
        assert_eq!(policy.allow.len(), 2);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn self_signed_alone_is_enough_and_has_no_hsts() {
        let dir = scratch("self");
        let p = proxy(
            &dir,
            &format!(
                "{SERVICE}x-berth:\n  proxy:\n    listen_tls: \"127.0.0.1:8443\"\n    tls: {{self_signed: true}}\n"
            ),
        );
        assert!(
            p.listen.is_empty(),
            "no default plain listener beside a TLS one"
        );
        assert_eq!(p.hsts, 0);
        assert!(p.tls.unwrap().self_signed);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn edge_mistakes_are_errors_at_their_line() {
        let dir = scratch("mistakes");
        std::fs::write(dir.join("empty.pem"), "not pem\n").unwrap();
        let found = errors(
            &dir,
            &format!(
                "{SERVICE}x-berth:\n  proxy:\n    listen_tls: [\":443\"]\n    tls:\n      certificates:\n        - cert: ./missing.pem\n          key: ./empty.pem\n      acme: {{domains: [\"10.0.0.1\"], challenge: dns-01}}\n      min_version: 1.1\n    trusted_proxies: [10.0.0.0/99]\n    routes:\n      - path: /\n        service: api\n        cors: {{origins: [\"*\"], credentials: true}}\n        rate_limit: {{rate: lots}}\n        allow: [everyone]\n        headers: {{set: {{\"Bad Name\": x}}}}\n"
            ),
        );
        let mut lines: Vec<u32> = found.iter().map(|(l, _)| *l).collect();
        lines.sort_unstable();
        assert_eq!(lines, [9, 10, 11, 11, 12, 13, 17, 18, 19, 20], "{found:#?}");
        let text: String = found.iter().map(|(_, m)| format!("{m}\n")).collect();
        for needle in [
            "cannot read the certificate",
            "missing.pem",
            "holds no PEM private key",
            "\"10.0.0.1\" is not a DNS name",
            "\"dns-01\" is not allowed",
            "1.1 is not a TLS version",
            "10.0.0.0/99",
            "cannot go with `credentials: true`",
            "\"lots\" is not a rate",
            "\"everyone\" is not an address",
            "\"Bad Name\" is not a header name",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn tls_pieces_must_fit_together() {
        let dir = scratch("fit");
        let cases = [
            (
                "    listen_tls: [\":443\"]\n",
                "has no certificate to serve",
            ),
            (
                "    tls: {self_signed: true}\n",
                "no TLS listener serves it",
            ),
            ("    redirect_http: true\n", "there is no `listen_tls`"),
            (
                "    listen_tls: [\":443\"]\n    tls: {acme: {domains: [example.org]}}\n    listen: []\n",
                "http-01 challenge needs a plain listener",
            ),
            (
                "    listen_tls: [\":443\"]\n    tls: {}\n",
                "has no certificate to serve",
            ),
        ];
        for (proxy, needle) in cases {
            let found = errors(&dir, &format!("{SERVICE}x-berth:\n  proxy:\n{proxy}"));
            assert!(
                found.iter().any(|(_, m)| m.contains(needle)),
                "{proxy}: {found:#?}"
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn dns_names_and_origins() {
        assert!(dns_name("example.org"));
        assert!(dns_name("*.example.org"));
        assert!(dns_name("localhost"));
        assert!(!dns_name("127.0.0.1"));
        assert!(!dns_name("exa mple.org"));
        assert!(!dns_name("-x.org"));
        assert!(!dns_name(""));
        assert!(origin_ok("https://app.example.org"));
        assert!(origin_ok("http://localhost:3000"));
        assert!(!origin_ok("https://app.example.org/"));
        assert!(!origin_ok("app.example.org"));
    }
}
