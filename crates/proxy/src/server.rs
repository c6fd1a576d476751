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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// Worker threads; 0 means one per CPU.
    pub workers: usize,
    /// How long requests in flight may take to finish once shutdown starts;
    /// whatever is still open then is dropped.
    pub drain_timeout: Duration,
    /// How long WebSockets (and other upgraded connections) may go on once
    /// shutdown starts, before they get a Close frame. Bounded by `drain_timeout`.
    pub websocket_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            workers: 0,
            drain_timeout: Duration::from_secs(10),
            websocket_grace: Duration::from_secs(5),
        }
    }
}

/// A running proxy.
#[derive(Debug)]
pub struct Proxy {
    addrs: Vec<SocketAddr>,
    workers: Vec<JoinHandle<()>>,
    table: RouteTable,
}

/// The routes and listeners of a running proxy, to change while it serves.
#[derive(Debug, Clone)]
pub struct RouteTable {
    shared: Arc<Shared>,
    /// To the acceptor: listeners to accept on.
    listeners: mpsc::UnboundedSender<NewListener>,
    /// Each `listen` address as written: where it is bound, and its stop.
    bound: Arc<Mutex<Vec<(String, SocketAddr, CancellationToken)>>>,
}

impl RouteTable {
    /// Makes the proxy listen on exactly `listen`: addresses it already
    /// listens on are kept as they are, new ones are bound and accepted on,
    /// gone ones stop accepting (connections through them go on until they
    /// close or shutdown drains them). Returns where it listens now.
    ///
    /// # Errors
    /// An address that cannot be bound; then nothing changed.
    pub fn listen(&self, listen: &[String]) -> Result<Vec<SocketAddr>, ProxyError> {
        let mut bound = self.bound.lock().unwrap_or_else(PoisonError::into_inner);
        let new: Vec<&String> = listen
            .iter()
            .filter(|a| !bound.iter().any(|(had, _, _)| had == *a))
            .collect();
        let opened = new
            .iter()
            .map(|a| bind(a).map(|l| ((*a).clone(), l)))
            .collect::<Result<Vec<_>, _>>()?;
        bound.retain(|(address, _, stop)| {
            let keep = listen.contains(address);
            if !keep {
                stop.cancel();
            }
            keep
        });
        for (address, listener) in opened {
            let addr = listener.local_addr().map_err(|source| ProxyError::Listen {
                address: address.clone(),
                source,
            })?;
            let stop = self.shared.shutdown.child_token();
            if self.listeners.send((listener, stop.clone())).is_ok() {
                bound.push((address, addr, stop));
            }
        }
        Ok(bound.iter().map(|(_, addr, _)| *addr).collect())
    }

    /// Compiles the routes of `settings` and swaps them in at once with
    /// the rest of the settings but `listen` ([`RouteTable::listen`]):
    /// new requests and connections take them (a worker builds its
    /// upstream client again when the connect timeout changed); requests,
    /// connections and WebSockets under way go on as they were.
    ///
    /// # Errors
    /// [`ProxyError::StaticRoot`] when a static route's directory does not
    /// exist; nothing changed then.
    pub fn replace(&self, settings: &crate::ProxySettings) -> Result<(), ProxyError> {
        let shared = &self.shared;
        let table = crate::setup::table(settings, &shared.view, &shared.metrics)?;
        shared.set_table(table);
        Ok(())
    }
}

impl Proxy {
    /// Its routes and listeners, to change while it serves.
    #[must_use]
    pub fn routes(&self) -> RouteTable {
        self.table.clone()
    }

    /// The bound addresses, in `listen` order (real ports when `:0` was asked).
    #[must_use]
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
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

/// Binds every address, failing on the first that cannot be bound.
pub(crate) fn bind_all(listen: &[String]) -> Result<Vec<std::net::TcpListener>, ProxyError> {
    listen.iter().map(|a| bind(a)).collect()
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
    listen: &[String],
    listeners: Vec<std::net::TcpListener>,
    shared: Arc<Shared>,
    options: ServeOptions,
) -> Result<Proxy, ProxyError> {
    let io = |source| ProxyError::Listen {
        address: "listener".into(),
        source,
    };
    let addrs = listeners
        .iter()
        .map(std::net::TcpListener::local_addr)
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?;
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
    for ((address, listener), addr) in listen.iter().zip(listeners).zip(&addrs) {
        let stop = shared.shutdown.child_token();
        if listen_tx.send((listener, stop.clone())).is_ok() {
            bound.push((address.clone(), *addr, stop));
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
                run_worker(inbox, open, acceptor, shared, drain_timeout);
            })
            .map_err(io)?;
        workers.push(worker);
    }
    Ok(Proxy {
        addrs,
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
        let err = bind_all(std::slice::from_ref(&address)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&address) && text.contains("in use"), "{text}");
        assert!(matches!(
            bind_all(&["nope".into()]),
            Err(ProxyError::InvalidListen { .. })
        ));
    }
}
