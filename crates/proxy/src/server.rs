//! Starting and stopping the proxy: listeners bound first (so a port in use
//! is reported before anything runs), then the worker threads (see
//! `worker`), and a [`Proxy`] handle whose `join` ends after the drain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use std::sync::{Mutex, PoisonError};

use tokio::net::TcpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::ProxyError;
use crate::shared::Shared;
use crate::worker::{NewListener, Worker, run_worker};

/// How the proxy runs and stops; the defaults suit most stacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// Worker threads; 0 means one per CPU.
    pub workers: usize,
    /// How long requests in flight may take to finish once shutdown starts;
    /// whatever is still open then is dropped.
    pub drain_timeout: Duration,
    /// How long WebSockets (and other upgraded connections) may go on once
    /// shutdown starts, before they get a Close frame. Bounded by `drain_timeout`.
    pub websocket_grace: Duration,
    /// Where the development certificate (`tls.self_signed`) is kept.
    pub state_dir: Option<std::path::PathBuf>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            workers: 0,
            drain_timeout: Duration::from_secs(10),
            websocket_grace: Duration::from_secs(5),
            state_dir: None,
        }
    }
}

/// A running proxy.
#[derive(Debug)]
pub struct Proxy {
    addrs: Vec<SocketAddr>,
    tls_addrs: Vec<SocketAddr>,
    workers: Vec<JoinHandle<()>>,
    table: RouteTable,
}

/// The routes and listeners of a running proxy, to change while it serves.
#[derive(Debug, Clone)]
pub struct RouteTable {
    shared: Arc<Shared>,
    /// To the acceptor: listeners to accept on.
    listeners: mpsc::UnboundedSender<NewListener>,
    /// Each listener: where it is bound, and its stop.
    bound: Arc<Mutex<Vec<Bound>>>,
}

/// A listener as configured.
#[derive(Debug)]
struct Bound {
    /// The `listen` or `listen_tls` address as written.
    address: String,
    tls: bool,
    addr: SocketAddr,
    stop: CancellationToken,
}

impl RouteTable {
    /// Makes the proxy listen on exactly `listen` (plain) and `listen_tls`:
    /// addresses it already listens on are kept as they are, new ones are
    /// bound and accepted on, gone ones stop accepting (connections through
    /// them go on until they close or shutdown drains them). Returns where
    /// it listens now, plain and TLS.
    ///
    /// # Errors
    /// An address that cannot be bound; then nothing changed.
    pub fn listen(
        &self,
        listen: &[String],
        listen_tls: &[String],
    ) -> Result<(Vec<SocketAddr>, Vec<SocketAddr>), ProxyError> {
        let mut bound = self.bound.lock().unwrap_or_else(PoisonError::into_inner);
        let wanted = |tls: bool| if tls { listen_tls } else { listen };
        let new: Vec<(&String, bool)> = [false, true]
            .into_iter()
            .flat_map(|tls| wanted(tls).iter().map(move |a| (a, tls)))
            .filter(|(a, tls)| !bound.iter().any(|b| &b.address == *a && b.tls == *tls))
            .collect();
        let opened = new
            .iter()
            .map(|(a, tls)| bind(a).map(|l| ((*a).clone(), *tls, l)))
            .collect::<Result<Vec<_>, _>>()?;
        bound.retain(|b| {
            let keep = wanted(b.tls).contains(&b.address);
            if !keep {
                b.stop.cancel();
            }
            keep
        });
        for (address, tls, listener) in opened {
            let addr = listener.local_addr().map_err(|source| ProxyError::Listen {
                address: address.clone(),
                source,
            })?;
            let stop = self.shared.shutdown.child_token();
            if self.listeners.send((listener, stop.clone(), tls)).is_ok() {
                bound.push(Bound {
                    address,
                    tls,
                    addr,
                    stop,
                });
            }
        }
        let of = |tls: bool| {
            bound
                .iter()
                .filter(|b| b.tls == tls)
                .map(|b| b.addr)
                .collect()
        };
        let (plain, tls): (Vec<SocketAddr>, Vec<SocketAddr>) = (of(false), of(true));
        if let Some(first) = tls.first() {
            self.shared
                .https_port
                .store(first.port(), std::sync::atomic::Ordering::Relaxed);
        }
        Ok((plain, tls))
    }

    /// Compiles the routes of `settings` and swaps them in at once with
    /// the rest of the settings but `listen` ([`RouteTable::listen`]):
    /// new requests and connections take them (a worker builds its
    /// upstream client again when the connect timeout changed); requests,
    /// connections and WebSockets under way go on as they were.
    ///
    /// Certificates are loaded again and new handshakes take them.
    ///
    /// # Errors
    /// [`ProxyError::StaticRoot`] when a static route's directory does not
    /// exist, [`ProxyError::Tls`] when a certificate does not load;
    /// nothing changed then.
    pub fn replace(&self, settings: &crate::ProxySettings) -> Result<(), ProxyError> {
        let shared = &self.shared;
        let table = crate::setup::table(settings, &shared.view, &shared.metrics)?;
        shared
            .tls
            .configure(settings.tls.as_ref(), &shared.shutdown)?;
        shared.set_table(table);
        Ok(())
    }
}

impl RouteTable {
    /// The TLS certificates in force: each source (`file`, `acme`,
    /// `self-signed`) with its names and expiry, and for ACME how ordering
    /// goes (last error, next attempt). Empty without `tls`.
    #[must_use]
    pub fn certificates(&self) -> Vec<crate::CertificateStatus> {
        self.shared.tls.certificates()
    }

    /// Every route's request totals by status class and latency histogram
    /// since the proxy started, as `/metrics` has them.
    #[must_use]
    pub fn stats(&self) -> Vec<crate::RouteStats> {
        crate::stats::parse(&self.shared.metrics.encode(|_| {}))
    }

    /// Orders a new ACME certificate now, whatever its renewal time; it is
    /// swapped in when issued, without dropping a connection. No effect
    /// without `tls.acme`.
    pub fn renew_certificates(&self) {
        self.shared.tls.renew_certificates();
    }

    /// The first delay before a failed ACME order is tried again (1 minute
    /// unless set; it doubles up to an hour). Takes effect from the next
    /// failure.
    pub fn set_acme_retry_base(&self, base: Duration) {
        self.shared.tls.set_acme_retry_base(base);
    }
}

impl Proxy {
    /// Its routes and listeners, to change while it serves.
    #[must_use]
    pub fn routes(&self) -> RouteTable {
        self.table.clone()
    }

    /// The bound plain addresses, in `listen` order (real ports when `:0`
    /// was asked).
    #[must_use]
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The bound TLS addresses, in `listen_tls` order.
    #[must_use]
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls_addrs
    }

    /// Completes once shutdown was requested and every connection drained
    /// (or the drain deadline passed).
    pub async fn join(self) {
        let workers = self.workers;
        let joined = tokio::task::spawn_blocking(move || {
            for worker in workers {
                if worker.join().is_err() {
                    tracing::error!("a proxy worker panicked");
                }
            }
        });
        if let Err(e) = joined.await {
            tracing::error!(error = %e, "joining the proxy workers failed");
        }
    }
}

/// A bound listener before it serves: its address as written, and whether
/// it is a TLS listener.
pub(crate) type Opened = (String, bool, std::net::TcpListener);

/// Binds every address, plain then TLS, failing on the first that cannot be bound.
pub(crate) fn bind_all(
    listen: &[String],
    listen_tls: &[String],
) -> Result<Vec<Opened>, ProxyError> {
    let plain = listen.iter().map(|a| (a, false));
    let tls = listen_tls.iter().map(|a| (a, true));
    plain
        .chain(tls)
        .map(|(a, secure)| bind(a).map(|l| (a.clone(), secure, l)))
        .collect()
}

fn bind(address: &str) -> Result<std::net::TcpListener, ProxyError> {
    let addr: SocketAddr = address.parse().map_err(|_| ProxyError::InvalidListen {
        address: address.to_string(),
    })?;
    let error = |source| ProxyError::Listen {
        address: address.to_string(),
        source,
    };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(error)?;
    socket.set_reuseaddr(true).map_err(error)?;
    socket.bind(addr).map_err(error)?;
    socket
        .listen(1024)
        .map_err(error)?
        .into_std()
        .map_err(error)
}

/// Starts the workers; the returned handle ends with them.
pub(crate) fn start(
    listeners: Vec<Opened>,
    shared: Arc<Shared>,
    options: ServeOptions,
) -> Result<Proxy, ProxyError> {
    let io = |source| ProxyError::Listen {
        address: "listener".into(),
        source,
    };
    let all = listeners
        .iter()
        .map(|(_, tls, l)| l.local_addr().map(|a| (a, *tls)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?;
    let of = |tls: bool| {
        all.iter()
            .filter(|(_, t)| *t == tls)
            .map(|(a, _)| *a)
            .collect()
    };
    let (addrs, tls_addrs): (Vec<SocketAddr>, Vec<SocketAddr>) = (of(false), of(true));
    if let Some(first) = tls_addrs.first() {
        shared
            .https_port
            .store(first.port(), std::sync::atomic::Ordering::Relaxed);
    }
    let count = match options.workers {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let mut inboxes = Vec::with_capacity(count);
    let mut peers = Vec::with_capacity(count);
    for _ in 0..count {
        let (worker, inbox, open) = Worker::new();
        peers.push(worker);
        inboxes.push((inbox, open));
    }
    let peers: Arc<[Worker]> = peers.into();
    let (listen_tx, listen_rx) = mpsc::unbounded_channel();
    let mut bound = Vec::with_capacity(listeners.len());
    for ((address, tls, listener), (addr, _)) in listeners.into_iter().zip(&all) {
        let stop = shared.shutdown.child_token();
        if listen_tx.send((listener, stop.clone(), tls)).is_ok() {
            bound.push(Bound {
                address,
                tls,
                addr: *addr,
                stop,
            });
        }
    }
    let mut listeners = Some(listen_rx);
    let mut workers = Vec::with_capacity(count);
    for (index, (inbox, open)) in inboxes.into_iter().enumerate() {
        // The first worker also accepts, for everyone.
        let acceptor = listeners.take().map(|l| (l, peers.clone()));
        let shared = shared.clone();
        let drain_timeout = options.drain_timeout;
        let worker = std::thread::Builder::new()
            .name(format!("berth-proxy-{index}"))
            .spawn(move || {
                run_worker(index, inbox, open, acceptor, shared, drain_timeout);
            })
            .map_err(io)?;
        workers.push(worker);
    }
    Ok(Proxy {
        addrs,
        tls_addrs,
        workers,
        table: RouteTable {
            shared,
            listeners: listen_tx,
            bound: Arc::new(Mutex::new(bound)),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_port_in_use_names_the_address() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap().to_string();
        let err = bind_all(&[], std::slice::from_ref(&address)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&address) && text.contains("in use"), "{text}");
        assert!(matches!(
            bind_all(&["nope".into()], &[]),
            Err(ProxyError::InvalidListen { .. })
        ));
    }
}
