//! Automatic certificates (ACME, RFC 8555) for `tls.acme`.
//!
//! One task per configuration orders the certificate for `domains`, puts it
//! in the [`CertStore`] under [`SOURCE`] (new handshakes take it, open
//! connections keep theirs) and renews it when a third of its lifetime is
//! left. A failing order is retried with backoff (1 minute doubling to
//! 1 hour) while a still-valid certificate keeps serving.
//!
//! - `task`: the loop (when to order, reporting, backoff).
//! - `order`: one order, from the account to the certificate chain.
//! - `challenge`: answering http-01 and tls-alpn-01.
//! - `client`: the HTTPS client that talks to the CA (with `ca_root`).
//! - `storage`: the account and certificate kept in the state directory.
//! - `schedule`: the renewal time and backoff rules.

mod challenge;
mod client;
mod order;
mod schedule;
mod storage;
mod task;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use berth_compose::xberth::AcmeSettings;
use rustls::crypto::CryptoProvider;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::store::CertStore;

/// The store's name for the ACME certificate.
pub(crate) const SOURCE: &str = "acme";

/// How an ACME certificate is doing, for `berth ps` and the API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcmeStatus {
    /// The names ordered.
    pub domains: Vec<String>,
    /// The CA's directory URL.
    pub directory: String,
    /// `http-01` or `tls-alpn-01`.
    pub challenge: String,
    /// Orders placed since this configuration started (0 when a stored
    /// certificate was reused).
    pub orders: u32,
    /// Failed attempts in a row (0 after a success).
    pub failures: u32,
    /// The last failure, with the CA's problem detail when it gave one.
    pub last_error: Option<String>,
    /// When the next order is due (renewal or retry).
    pub next_attempt: Option<SystemTime>,
}

/// Shared between the edge and its ACME task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Arc<CertStore>,
    /// http-01 answers: token to key authorization.
    pub(crate) http01: Arc<RwLock<HashMap<String, String>>>,
    pub(crate) provider: Arc<CryptoProvider>,
    status: Mutex<Option<AcmeStatus>>,
    /// The first retry delay, in milliseconds.
    retry_base_ms: AtomicU64,
}

/// What one task works with.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) settings: AcmeSettings,
    /// `<state>/acme/<directory host>`.
    pub(crate) dir: PathBuf,
    pub(crate) shared: Arc<Shared>,
    pub(crate) stop: CancellationToken,
    /// Wakes the task to order now ([`Acme::renew_now`]).
    pub(crate) wake: Arc<Notify>,
}

impl Job {
    /// Updates the reported status.
    pub(crate) fn report(&self, change: impl FnOnce(&mut AcmeStatus)) {
        let mut status = self
            .shared
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(status) = status.as_mut() {
            change(status);
        }
    }

    pub(crate) fn retry_base(&self) -> Duration {
        Duration::from_millis(self.shared.retry_base_ms.load(Ordering::Relaxed))
    }
}

/// The ACME side of a TLS edge: at most one task, for the settings in force.
#[derive(Debug)]
pub(crate) struct Acme {
    shared: Arc<Shared>,
    running: Mutex<Option<Running>>,
}

/// The task in force.
#[derive(Debug)]
struct Running {
    settings: AcmeSettings,
    stop: CancellationToken,
    wake: Arc<Notify>,
}

impl Acme {
    pub(crate) fn new(
        store: Arc<CertStore>,
        http01: Arc<RwLock<HashMap<String, String>>>,
        provider: Arc<CryptoProvider>,
    ) -> Acme {
        Acme {
            shared: Arc::new(Shared {
                store,
                http01,
                provider,
                status: Mutex::new(None),
                retry_base_ms: AtomicU64::new(
                    u64::try_from(schedule::RETRY_BASE.as_millis()).unwrap_or(60_000),
                ),
            }),
            running: Mutex::new(None),
        }
    }

    /// Runs a task for `settings` (keeping the one running when they did
    /// not change), or none.
    pub(crate) fn configure(
        &self,
        settings: Option<&AcmeSettings>,
        state_dir: &Path,
        shutdown: &CancellationToken,
    ) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let (Some(new), Some(old)) = (settings, running.as_ref())
            && *new == old.settings
            && !old.stop.is_cancelled()
        {
            return;
        }
        if let Some(old) = running.take() {
            old.stop.cancel();
        }
        *self
            .shared
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = settings.map(|s| AcmeStatus {
            domains: s.domains.clone(),
            directory: s.directory.clone(),
            challenge: s.challenge.as_str().to_string(),
            ..AcmeStatus::default()
        });
        let Some(settings) = settings else {
            return;
        };
        let stop = shutdown.child_token();
        let wake = Arc::new(Notify::new());
        let job = Job {
            settings: settings.clone(),
            dir: storage::directory_dir(state_dir, &settings.directory),
            shared: self.shared.clone(),
            stop: stop.clone(),
            wake: wake.clone(),
        };
        spawn(job);
        *running = Some(Running {
            settings: settings.clone(),
            stop,
            wake,
        });
    }

    /// Stops the task, if any.
    pub(crate) fn stop(&self) {
        self.configure(None, Path::new(""), &CancellationToken::new());
    }

    pub(crate) fn status(&self) -> Option<AcmeStatus> {
        self.shared
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Orders a new certificate now, whatever the renewal time.
    pub(crate) fn renew_now(&self) {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(running) = running.as_ref() {
            running.wake.notify_one();
        }
    }

    /// Sets the first retry delay (it doubles from there to an hour).
    pub(crate) fn set_retry_base(&self, base: Duration) {
        let ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
        self.shared.retry_base_ms.store(ms, Ordering::Relaxed);
    }
}

impl Drop for Acme {
    /// The edge is gone (a proxy that failed to start): so is its task.
    fn drop(&mut self) {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(running) = running.as_ref() {
            running.stop.cancel();
        }
    }
}

/// Runs the task on the current runtime, or on a thread of its own when
/// there is none.
fn spawn(job: Job) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(task::run(job));
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("berth-acme".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(task::run(job)),
                Err(e) => tracing::error!(error = %e, "ACME: no runtime to order certificates on"),
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "ACME: cannot start ordering certificates");
    }
}
