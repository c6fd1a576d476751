//! The production-edge settings of `x-berth.proxy`: TLS and its
//! certificates, and what each route enforces (client allow-lists, rate
//! limits, CORS, response headers). Checked and defaulted by
//! `normalize::edge`; the proxy reads them as they are.

use std::path::PathBuf;

use indexmap::IndexMap;
use serde::Serialize;

use crate::units::Duration;

pub use ipnet::IpNet;

/// `x-berth.proxy.tls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsSettings {
    /// PEM certificate chains and their keys, picked by SNI from their names.
    pub certificates: Vec<CertificateFiles>,
    /// Certificates obtained and renewed from an ACME CA.
    pub acme: Option<AcmeSettings>,
    /// A certificate for `localhost`, `127.0.0.1` and `::1`, made once and
    /// kept in the state directory (for development).
    pub self_signed: bool,
    /// The oldest protocol version offered.
    pub min_version: TlsVersion,
}

/// One `tls.certificates` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateFiles {
    /// The certificate chain, leaf first (PEM); absolute.
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1); absolute.
    pub key: PathBuf,
    /// Where the entry is written (`compose.yaml:12`), for errors found
    /// when the files are read.
    #[serde(skip)]
    pub written_at: String,
}

/// `tls.acme`: automatic certificates (RFC 8555).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AcmeSettings {
    /// The account's contact, when given.
    pub email: Option<String>,
    /// The names of the one certificate ordered (at least one).
    pub domains: Vec<String>,
    /// The CA's directory URL.
    pub directory: String,
    pub challenge: AcmeChallenge,
    /// An extra trust root for talking to the CA (test and private CAs); absolute.
    pub ca_root: Option<PathBuf>,
}

/// Let's Encrypt's production directory, the default CA.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// How the CA checks that berth answers for a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AcmeChallenge {
    /// A token under `/.well-known/acme-challenge/` on a plain listener (port 80).
    #[default]
    Http01,
    /// A special certificate offered to the `acme-tls/1` protocol on a TLS
    /// listener (port 443).
    TlsAlpn01,
}

impl AcmeChallenge {
    pub fn as_str(self) -> &'static str {
        match self {
            AcmeChallenge::Http01 => "http-01",
            AcmeChallenge::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

/// `tls.min_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize)]
pub enum TlsVersion {
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

/// What a route enforces and adds, besides where it sends requests.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct RoutePolicy {
    /// Response headers set and removed.
    pub headers: HeaderRules,
    /// `nosniff`, frame options, referrer policy (and a default CSP on
    /// static routes); `None`: on for TLS listeners, off for plain ones.
    pub security_headers: Option<bool>,
    pub cors: Option<Cors>,
    pub rate_limit: Option<RateLimit>,
    /// Only these client networks may use the route (403 for the others);
    /// empty: everyone.
    pub allow: Vec<IpNet>,
}

/// `headers: {set, remove}` of a route: applied to its responses.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct HeaderRules {
    /// Header name (lowercase) to value, replacing what the upstream sent.
    pub set: IndexMap<String, String>,
    /// Header names (lowercase) removed from responses.
    pub remove: Vec<String>,
}

/// `cors`: berth answers preflights and adds the CORS response headers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cors {
    /// Allowed origins (`scheme://host[:port]`); `*` alone allows any
    /// origin (not with `credentials`).
    pub origins: Vec<String>,
    /// Allowed methods (uppercase); default GET, HEAD, POST.
    pub methods: Vec<String>,
    /// Allowed request headers (lowercase); default none beyond the safelisted.
    pub headers: Vec<String>,
    /// Response headers scripts may read (lowercase).
    pub expose_headers: Vec<String>,
    pub credentials: bool,
    /// How long browsers may cache a preflight answer.
    pub max_age: Option<Duration>,
}

/// `rate_limit`: GCRA per client key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    /// Requests per period, sustained.
    pub rate: Rate,
    /// Requests allowed at once beyond the sustained rate.
    pub burst: u32,
    pub key: RateKey,
}

/// A rate as written: `10/s`, `600/m`, `1000/h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

/// What a rate limit counts per.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RateKey {
    /// The client's address (after `trusted_proxies`).
    #[default]
    ClientIp,
    /// The value of a request header (lowercase name); requests without it
    /// share one key.
    Header(String),
}

impl std::str::FromStr for Rate {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("{text:?} is not a rate: write COUNT/UNIT, e.g. 10/s, 600/m or 1000/h");
        let (count, unit) = text.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        if count == 0 {
            return Err(format!("{text:?}: a rate of zero lets nothing through"));
        }
        let unit = unit.trim();
        let seconds = match unit {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86_400,
            _ => match Duration::parse(unit) {
                Ok(d) if !d.0.is_zero() => {
                    return Ok(Rate { count, per: d });
                }
                _ => return Err(bad()),
            },
        };
        Ok(Rate {
            count,
            per: Duration(std::time::Duration::from_secs(seconds)),
        })
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.per.0.as_secs() {
            1 if self.per.0.subsec_nanos() == 0 => write!(f, "{}/s", self.count),
            60 if self.per.0.subsec_nanos() == 0 => write!(f, "{}/m", self.count),
            3600 if self.per.0.subsec_nanos() == 0 => write!(f, "{}/h", self.count),
            _ => write!(f, "{}/{}", self.count, self.per),
        }
    }
}

/// An address or network as written in `allow` and `trusted_proxies`: a
/// CIDR (`10.0.0.0/8`) or one address (`127.0.0.1`, `::1`).
///
/// # Errors
/// What is wrong with the text.
pub fn parse_network(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{text:?} is not an address or a network (CIDR such as 10.0.0.0/8)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        let r: Rate = "10/s".parse().unwrap();
        assert_eq!((r.count, r.per.0.as_secs()), (10, 1));
        assert_eq!(r.to_string(), "10/s");
        let r: Rate = "600 / m".parse().unwrap();
        assert_eq!((r.count, r.per.0.as_secs()), (600, 60));
        let r: Rate = "5/10s".parse().unwrap();
        assert_eq!((r.count, r.per.0.as_secs()), (5, 10));
        assert_eq!(r.to_string(), "5/10s");
        for bad in ["10", "x/s", "0/s", "10/parsec", "-1/s", "10/0s"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn networks_parse() {
        assert_eq!(
            parse_network("10.1.2.3/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(parse_network("::1").unwrap().to_string(), "::1/128");
        assert_eq!(
            parse_network("127.0.0.1").unwrap().to_string(),
            "127.0.0.1/32"
        );
        assert!(parse_network("10.0.0.0/33").is_err());
        assert!(parse_network("localhost").is_err());
    }
}
