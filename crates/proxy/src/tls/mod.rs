//! TLS for `listen_tls`: rustls (ring) with TLS 1.2 and 1.3, AEAD suites
//! only, X25519/P-256/P-384, session resumption by tickets and by cache,
//! ALPN `h2` and `http/1.1`, and a certificate picked per handshake by SNI
//! from a [`CertStore`].
//!
//! - `store`: the certificates by source and the SNI index.
//! - `files`: PEM files to certificates; noticing they changed.
//! - `self_signed`: the development certificate.
//! - `acme`: automatic certificates (RFC 8555), ordered and renewed by a task.
//! - `status`: what each certificate is, for `berth ps`.
//!
//! Certificate files are checked every second and reloaded when they
//! change; a file that does not load (half written, a key from another
//! certificate) is reported and the certificate before it keeps serving.

mod acme;
mod files;
pub(crate) mod self_signed;
mod status;
mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use berth_compose::xberth::{AcmeChallenge, CertificateFiles, TlsSettings, TlsVersion};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::ServerSessionMemoryCache;
use tokio_util::sync::CancellationToken;

pub use acme::AcmeStatus;
pub use status::CertificateStatus;
pub(crate) use store::{ACME_TLS_ALPN, CertStore};

use crate::error::ProxyError;

/// How often certificate files are looked at.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// The TLS side of the proxy: what TLS listeners accept with, and the
/// certificates they serve. Lives as long as the proxy; a reconfiguration
/// calls [`TlsEdge::configure`] again.
#[derive(Debug)]
pub(crate) struct TlsEdge {
    provider: Arc<CryptoProvider>,
    pub(crate) store: Arc<CertStore>,
    /// `None` while no `tls` is configured.
    config: RwLock<Option<Arc<ServerConfig>>>,
    /// ACME http-01 answers: token to key authorization.
    pub(crate) http01: Arc<RwLock<HashMap<String, String>>>,
    state_dir: Option<PathBuf>,
    /// The ACME task of the settings in force.
    acme: acme::Acme,
    /// Stops the file watcher of the settings in force.
    watching: Mutex<Option<CancellationToken>>,
}

/// The crypto berth's TLS runs on: ring's suites (all AEAD: AES-GCM and
/// ChaCha20-Poly1305, with ECDHE for TLS 1.2) and key exchange groups
/// (X25519, P-256, P-384).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsEdge {
    pub(crate) fn new(state_dir: Option<PathBuf>) -> Self {
        let provider = provider();
        let store = Arc::new(CertStore::default());
        let http01 = Arc::new(RwLock::new(HashMap::new()));
        TlsEdge {
            acme: acme::Acme::new(store.clone(), http01.clone(), provider.clone()),
            provider,
            store,
            config: RwLock::new(None),
            http01,
            state_dir,
            watching: Mutex::new(None),
        }
    }

    /// The handshake configuration, while TLS is configured.
    pub(crate) fn config(&self) -> Option<Arc<ServerConfig>> {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes `tls` the settings in force: loads every certificate file
    /// (all must load), makes or reuses the development certificate,
    /// watches the files, and starts the ACME task (kept running when its
    /// settings did not change), which puts its certificate in when it has
    /// one.
    ///
    /// # Errors
    /// [`ProxyError::Tls`] naming the entry and what is wrong; nothing
    /// changed then.
    pub(crate) fn configure(
        &self,
        tls: Option<&TlsSettings>,
        shutdown: &CancellationToken,
    ) -> Result<(), ProxyError> {
        let Some(tls) = tls else {
            self.stop_watching();
            self.acme.stop();
            *self.config.write().unwrap_or_else(PoisonError::into_inner) = None;
            return Ok(());
        };
        let mut loaded = Vec::with_capacity(tls.certificates.len());
        // Taken before reading, so a change made while this runs is seen.
        let stamps: Vec<Stamps> = tls.certificates.iter().map(stamps).collect();
        for files in &tls.certificates {
            let served =
                files::load_pair(&self.provider, &files.cert, &files.key).map_err(|message| {
                    ProxyError::Tls {
                        message: format!("{}: {message}", files.written_at),
                    }
                })?;
            loaded.push((file_source(files), served));
        }
        let development = match (tls.self_signed, &self.state_dir) {
            (false, _) => None,
            (true, Some(dir)) => Some(self_signed::load_or_make(&self.provider, dir).map_err(
                |message| ProxyError::Tls {
                    message: format!("x-berth.proxy.tls.self_signed: {message}"),
                },
            )?),
            (true, None) => {
                return Err(ProxyError::Tls {
                    message: "x-berth.proxy.tls.self_signed: no state directory to keep the certificate in".into(),
                });
            }
        };
        let acme_dir = match (&tls.acme, &self.state_dir) {
            (Some(_), None) => {
                return Err(ProxyError::Tls {
                    message: "x-berth.proxy.tls.acme: no state directory to keep the account and certificate in".into(),
                });
            }
            (_, dir) => dir.clone(),
        };
        let acme_alpn = tls
            .acme
            .as_ref()
            .is_some_and(|a| a.challenge == AcmeChallenge::TlsAlpn01);
        let config = server_config(
            &self.provider,
            tls.min_version,
            self.store.clone(),
            acme_alpn,
        )
        .map_err(|e| ProxyError::Tls {
            message: format!("x-berth.proxy.tls: {e}"),
        })?;
        let keep: Vec<String> = loaded.iter().map(|(source, _)| source.clone()).collect();
        let acme = tls.acme.is_some();
        let dev = development.is_some();
        self.store.retain(|source| {
            keep.iter().any(|k| k == source)
                || (acme && source == ACME_SOURCE)
                || (dev && source == SELF_SIGNED_SOURCE)
        });
        for (source, served) in loaded {
            self.store.set(&source, served);
        }
        if let Some(served) = development {
            self.store.set(SELF_SIGNED_SOURCE, served);
        }
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(config));
        self.watch(tls.certificates.clone(), stamps, shutdown);
        match (&tls.acme, acme_dir) {
            (Some(settings), Some(dir)) => self.acme.configure(Some(settings), &dir, shutdown),
            _ => self.acme.stop(),
        }
        Ok(())
    }

    fn stop_watching(&self) {
        if let Some(old) = self
            .watching
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            old.cancel();
        }
    }

    /// Reloads each certificate entry whose files change, until the
    /// settings change or the proxy stops.
    fn watch(
        &self,
        entries: Vec<CertificateFiles>,
        seen: Vec<Stamps>,
        shutdown: &CancellationToken,
    ) {
        self.stop_watching();
        if entries.is_empty() {
            return;
        }
        let stop = shutdown.child_token();
        *self.watching.lock().unwrap_or_else(PoisonError::into_inner) = Some(stop.clone());
        let store = self.store.clone();
        let provider = self.provider.clone();
        let spawned = std::thread::Builder::new()
            .name("berth-tls-watch".into())
            .spawn(move || watch_files(&entries, seen, &store, &provider, &stop));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "certificate files will not be reloaded when they change");
        }
    }
}

/// Loads every `certificates` entry as `up` would, keeping nothing: what
/// `berth config` checks beyond the file's syntax.
///
/// # Errors
/// [`ProxyError::Tls`] for the first entry that does not load, naming its
/// place in the file and what is wrong.
pub fn check_certificates(tls: &TlsSettings) -> Result<(), ProxyError> {
    let provider = provider();
    for files in &tls.certificates {
        files::load_pair(&provider, &files.cert, &files.key).map_err(|message| {
            ProxyError::Tls {
                message: format!("{}: {message}", files.written_at),
            }
        })?;
    }
    Ok(())
}

/// The store's name for the ACME certificate.
pub(crate) const ACME_SOURCE: &str = acme::SOURCE;
const SELF_SIGNED_SOURCE: &str = "self-signed";

fn file_source(files: &CertificateFiles) -> String {
    format!("file:{}:{}", files.cert.display(), files.key.display())
}

/// What a certificate entry's two files look like.
type Stamps = (files::Stamp, files::Stamp);

fn stamps(f: &CertificateFiles) -> Stamps {
    (files::Stamp::of(&f.cert), files::Stamp::of(&f.key))
}

fn watch_files(
    entries: &[CertificateFiles],
    mut seen: Vec<Stamps>,
    store: &CertStore,
    provider: &CryptoProvider,
    stop: &CancellationToken,
) {
    while !stop.is_cancelled() {
        std::thread::sleep(WATCH_EVERY);
        for (entry, last) in entries.iter().zip(seen.iter_mut()) {
            let now = stamps(entry);
            if now == *last {
                continue;
            }
            *last = now;
            match files::load_pair(provider, &entry.cert, &entry.key) {
                Ok(served) => {
                    tracing::info!(cert = %entry.cert.display(), "certificate reloaded");
                    store.set(&file_source(entry), served);
                }
                Err(message) => tracing::error!(
                    "{}: {message}; the certificate loaded before keeps serving",
                    entry.written_at
                ),
            }
        }
    }
}

/// The rustls configuration of TLS listeners.
fn server_config(
    provider: &Arc<CryptoProvider>,
    min_version: TlsVersion,
    store: Arc<CertStore>,
    acme_alpn: bool,
) -> Result<ServerConfig, rustls::Error> {
    let versions: &[&rustls::SupportedProtocolVersion] = match min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let mut config = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if acme_alpn {
        config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    }
    config.session_storage = ServerSessionMemoryCache::new(16 * 1024);
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    Ok(config)
}

/// Writes a file only its owner can read (keys, certificates, ACME
/// account), through a temporary file and a rename so a reader never sees
/// half of it; makes the directory (mode 0700) if needed.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    if let Some(dir) = path.parent() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(fail)?;
    }
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(fail)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}
