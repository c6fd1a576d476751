//! Worker threads, like nginx's worker processes: each runs its own
//! single-threaded tokio runtime and its own upstream connection pool. The
//! first worker also accepts, handing each connection to the worker with
//! the fewest open, so a request and the upstream connection serving it
//! stay on one thread with no cross-thread wake-ups on the hot path
//! (`bench/RESULTS.md`: about 1.5x the requests/s of one shared
//! work-stealing runtime, for a third less CPU per request).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::client;
use crate::conn;
use crate::log_batch;
use crate::shared::Shared;

/// A connection accepted for a worker, and whether it came through a TLS listener.
pub(crate) type Accepted = (std::net::TcpStream, SocketAddr, bool);

/// A listener for the acceptor, when to stop accepting on it (its
/// connections go on), and whether it is a TLS listener.
pub(crate) type NewListener = (
    std::net::TcpListener,
    tokio_util::sync::CancellationToken,
    bool,
);

/// How the acceptor reaches a worker.
#[derive(Debug, Clone)]
pub(crate) struct Worker {
    tx: mpsc::UnboundedSender<Accepted>,
    /// Connections open on this worker, for picking the least busy.
    open: Arc<AtomicUsize>,
}

impl Worker {
    /// A worker's handle and the inbox it serves.
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<Accepted>, Arc<AtomicUsize>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let open = Arc::new(AtomicUsize::new(0));
        (
            Worker {
                tx,
                open: open.clone(),
            },
            rx,
            open,
        )
    }
}

/// Worker `index`: its own runtime, upstream client and metric shard,
/// serving the connections handed to it until shutdown has drained them.
pub(crate) fn run_worker(
    index: usize,
    mut inbox: mpsc::UnboundedReceiver<Accepted>,
    open: Arc<AtomicUsize>,
    acceptor: Option<(mpsc::UnboundedReceiver<NewListener>, Arc<[Worker]>)>,
    shared: Arc<Shared>,
    drain_timeout: Duration,
) {
    // Declared before the runtime, so dropped after it: the lines of the
    // connections the runtime drops are handed over too.
    let _access_log = log_batch::install(shared.view.clone());
    crate::shards::set_worker(index);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start a proxy worker");
            return;
        }
    };
    runtime.block_on(async move {
        tokio::spawn(log_batch::flush_every());
        if let Some((listeners, peers)) = acceptor {
            tokio::spawn(accept_all(listeners, shared.clone(), peers));
        }
        let mut connect_timeout = shared.table().connect_timeout;
        let mut client = client::build(connect_timeout);
        loop {
            let (stream, peer, secure) = tokio::select! {
                accepted = inbox.recv() => match accepted {
                    Some(accepted) => accepted,
                    None => break,
                },
                () = shared.shutdown.cancelled() => break,
            };
            let Ok(stream) = TcpStream::from_std(stream) else {
                open.fetch_sub(1, Ordering::Relaxed);
                continue;
            };
            // Each connection takes the table as it is when it opens.
            let table = shared.table();
            if table.connect_timeout != connect_timeout {
                connect_timeout = table.connect_timeout;
                client = client::build(connect_timeout);
            }
            let _ = stream.set_nodelay(true);
            let open = open.clone();
            if secure {
                let serve = secured(stream, peer, shared.clone(), table, client.clone());
                shared.tasks.spawn(async move {
                    serve.await;
                    open.fetch_sub(1, Ordering::Relaxed);
                });
            } else {
                let serve = conn::serve(stream, peer, false, shared.clone(), table, client.clone());
                shared.tasks.spawn(async move {
                    serve.await;
                    open.fetch_sub(1, Ordering::Relaxed);
                });
            }
        }
        // Keep this runtime turning until every connection is done.
        drain(&shared, drain_timeout).await;
    });
}

/// Accepts on every listener handed over, the first ones and those a
/// reconfiguration adds, until shutdown.
async fn accept_all(
    mut listeners: mpsc::UnboundedReceiver<NewListener>,
    shared: Arc<Shared>,
    peers: Arc<[Worker]>,
) {
    loop {
        let (listener, stop, secure) = tokio::select! {
            next = listeners.recv() => match next {
                Some(next) => next,
                None => return,
            },
            () = shared.shutdown.cancelled() => return,
        };
        let listener = listener
            .set_nonblocking(true)
            .and_then(|()| TcpListener::from_std(listener));
        match listener {
            Ok(listener) => {
                tokio::spawn(accept_loop(
                    listener,
                    stop,
                    secure,
                    shared.clone(),
                    peers.clone(),
                ));
            }
            Err(e) => tracing::error!(error = %e, "cannot accept on a listener"),
        }
    }
}

/// Accepts and hands each connection to the worker with the fewest open,
/// until shutdown or `stop` (then the listener closes; its connections go on).
async fn accept_loop(
    listener: TcpListener,
    stop: tokio_util::sync::CancellationToken,
    secure: bool,
    shared: Arc<Shared>,
    workers: Arc<[Worker]>,
) {
    let mut next = 0usize;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shared.shutdown.cancelled() => return,
            () = stop.cancelled() => return,
        };
        match accepted.and_then(|(stream, peer)| Ok((stream.into_std()?, peer, secure))) {
            Ok(accepted) => {
                next = next.wrapping_add(1);
                let n = workers.len();
                let worker = (0..n)
                    .map(|i| &workers[(next + i) % n])
                    .min_by_key(|w| w.open.load(Ordering::Relaxed));
                if let Some(worker) = worker {
                    worker.open.fetch_add(1, Ordering::Relaxed);
                    if worker.tx.send(accepted).is_err() {
                        worker.open.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            }
            Err(e) => {
                // Out of file descriptors and the like: back off, do not spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A connection of a TLS listener: the handshake (within the request head
/// timeout), then HTTP over it. A tls-alpn-01 validation ends with its
/// handshake.
async fn secured(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    table: Arc<crate::shared::Table>,
    client: client::UpstreamClient,
) {
    let Some(config) = shared.tls.config() else {
        return;
    };
    let handshake = tokio_rustls::TlsAcceptor::from(config).accept(stream);
    let stream = tokio::select! {
        done = tokio::time::timeout(table.timeouts.header_read, handshake) => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                shared.metrics.tls_handshake_failed();
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake not done in time");
                shared.metrics.tls_handshake_failed();
                return;
            }
        },
        () = shared.shutdown.cancelled() => return,
    };
    if stream.get_ref().1.alpn_protocol() == Some(crate::tls::ACME_TLS_ALPN) {
        return;
    }
    conn::serve(stream, peer, true, shared, table, client).await;
}

/// Waits for shutdown, then for every connection (on all workers), and at
/// the deadline stops them all: a runtime that stops drops what is left.
async fn drain(shared: &Shared, drain_timeout: Duration) {
    shared.shutdown.cancelled().await;
    shared.tasks.close();
    tokio::select! {
        () = shared.tasks.wait() => {}
        () = shared.hard_stop.cancelled() => {}
        () = tokio::time::sleep(drain_timeout) => {
            tracing::warn!("drain deadline passed, closing the remaining connections");
        }
    }
    shared.hard_stop.cancel();
}
