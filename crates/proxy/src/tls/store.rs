//! The certificates a TLS listener offers, picked per handshake by SNI.
//!
//! Each source (a `certificates` entry, the ACME order, the self-signed
//! development certificate) puts its current certificate in under its own
//! name; a source that reloads or renews replaces its entry and the index is
//! rebuilt at once, so the next handshake gets the new certificate while
//! connections already open keep theirs. Sources are ranked in the order
//! they were first added: files, then ACME, then self-signed.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use indexmap::IndexMap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The ALPN protocol of the tls-alpn-01 challenge (RFC 8737).
pub(crate) const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// A certificate ready to serve, with what it is for.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    pub(crate) key: Arc<CertifiedKey>,
    /// DNS names (lowercase, `*.` kept) and IP addresses it covers.
    pub(crate) names: Vec<String>,
    pub(crate) not_before: SystemTime,
    pub(crate) not_after: SystemTime,
}

#[derive(Debug, Default)]
struct Index {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.org` under `example.org`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// For a handshake without SNI (an IP address) or with an unknown name.
    fallback: Option<Arc<CertifiedKey>>,
}

/// Every source's certificate, and the SNI index over them.
#[derive(Debug, Default)]
pub(crate) struct CertStore {
    sources: RwLock<IndexMap<String, Served>>,
    index: RwLock<Arc<Index>>,
    /// tls-alpn-01 answers by name, only offered to `acme-tls/1`.
    challenges: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl CertStore {
    /// Puts `served` in as `source`'s certificate, replacing its last one.
    pub(crate) fn set(&self, source: &str, served: Served) {
        let mut sources = self.sources.write().unwrap_or_else(PoisonError::into_inner);
        match sources.get_mut(source) {
            Some(slot) => *slot = served,
            None => {
                sources.insert(source.to_string(), served);
            }
        }
        self.reindex(&sources);
    }

    /// Offers `key` to `acme-tls/1` handshakes for `name` (tls-alpn-01),
    /// or stops offering one (`None`).
    pub(crate) fn set_challenge(&self, name: &str, key: Option<Arc<CertifiedKey>>) {
        let mut challenges = self
            .challenges
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let name = name.to_ascii_lowercase();
        match key {
            Some(key) => challenges.insert(name, key),
            None => challenges.remove(&name),
        };
    }

    /// Each source's name and certificate, in rank order.
    pub(crate) fn list(&self) -> Vec<(String, Served)> {
        let sources = self.sources.read().unwrap_or_else(PoisonError::into_inner);
        sources
            .iter()
            .map(|(name, served)| (name.clone(), served.clone()))
            .collect()
    }

    /// Drops the sources not in `keep` (a reconfiguration removed them).
    pub(crate) fn retain(&self, keep: impl Fn(&str) -> bool) {
        let mut sources = self.sources.write().unwrap_or_else(PoisonError::into_inner);
        sources.retain(|name, _| keep(name));
        self.reindex(&sources);
    }

    fn reindex(&self, sources: &IndexMap<String, Served>) {
        let mut index = Index::default();
        for served in sources.values() {
            for name in &served.names {
                let slot = match name.strip_prefix("*.") {
                    Some(parent) => index.wildcard.entry(parent.to_string()),
                    None => index.exact.entry(name.clone()),
                };
                slot.or_insert_with(|| served.key.clone());
            }
            if index.fallback.is_none() {
                index.fallback = Some(served.key.clone());
            }
        }
        *self.index.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(index);
    }

    /// The certificate for a handshake naming `server_name`.
    pub(crate) fn pick(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let index = self
            .index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(name) = server_name else {
            return index.fallback.clone();
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(key) = index.exact.get(&name) {
            return Some(key.clone());
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(key) = index.wildcard.get(parent)
        {
            return Some(key.clone());
        }
        index.fallback.clone()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if acme {
            let name = hello.server_name()?.to_ascii_lowercase();
            return self
                .challenges
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&name)
                .cloned();
        }
        self.pick(hello.server_name())
    }
}
