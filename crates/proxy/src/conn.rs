//! One client connection: HTTP/1.1 or HTTP/2 (prior knowledge) through
//! hyper-util's auto builder, with upgrades, the request head deadline, the
//! idle keep-alive timeout and graceful shutdown.
//!
//! hyper's `header_read_timeout` is off: it would also run between the
//! requests of a kept-alive connection and close it at `header_read`
//! instead of `idle`. `head::deadline` does that job for request heads only.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;

use crate::activity::{Activity, Tracked, idle};
use crate::client::UpstreamClient;
use crate::head;
use crate::service::Edge;
use crate::shared::{Shared, Table};
use crate::watched::{Either, Watched};

/// hyper's read buffer cannot be smaller than this.
const MIN_BUF: usize = 8 * 1024;

/// hyper's HTTP/1 read buffer: room for the largest head allowed and more;
/// no head can be longer.
fn read_buffer(max_header: u64) -> usize {
    usize::try_from(max_header)
        .unwrap_or(usize::MAX)
        .max(MIN_BUF)
        .saturating_add(MIN_BUF)
}

/// The connection builder for a largest head of `max_header` bytes.
pub(crate) fn builder(max_header: u64) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .header_read_timeout(None)
        .max_buf_size(read_buffer(max_header))
        .keep_alive(true);
    // No HTTP/2 keep-alive pings: their answers would count as traffic and
    // keep idle connections open past the idle timeout.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(max_header).unwrap_or(u32::MAX));
    builder
}

/// Serves one accepted connection until it closes, idles out or shutdown
/// ends it (gracefully first, dropped at the hard stop).
///
/// `secure`: the connection came through a TLS listener (`stream` is then
/// the decrypted stream).
pub(crate) async fn serve<S>(
    stream: S,
    peer: SocketAddr,
    secure: bool,
    shared: Arc<Shared>,
    table: Arc<Table>,
    client: UpstreamClient,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::client());
    let io = TokioIo::new(Tracked::client(
        stream,
        activity.clone(),
        read_buffer(table.max_header),
    ));
    let service = Edge::new(shared.clone(), client, peer, secure, activity.clone());
    let conn = table.builder.serve_connection_with_upgrades(io, service);
    // A token of its own: polling the shared one would take a lock every
    // worker contends for.
    let shutdown = shared.shutdown.child_token();
    let timeouts = table.timeouts;
    // Polled only when one of them wakes it, not on every request.
    let watchdog = async {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => Stop::Drain,
            () = idle(&activity, timeouts.idle) => Stop::Drain,
            () = head_deadline(&activity, timeouts.header_read) => Stop::Drop,
        }
    };
    let watched = Watched::new(conn, watchdog);
    tokio::pin!(watched);
    match watched.as_mut().await {
        Either::Main(result) => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            return;
        }
        Either::Watchdog(Stop::Drop) => {
            // Nothing to answer yet: a slow (or silent) client is dropped.
            tracing::debug!(%peer, "request head not received in time");
            return;
        }
        Either::Watchdog(Stop::Drain) => {}
    }
    let mut conn = watched.main();
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        () = shared.hard_stop.cancelled() => {}
    }
}

/// How a watchdog ends a connection.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// Shutdown or idle: finish the request under way, then close.
    Drain,
    /// A request head overdue: close at once.
    Drop,
}

/// Resolves when a request head is overdue (never, without a head clock).
async fn head_deadline(activity: &Activity, limit: std::time::Duration) {
    match activity.head() {
        Some(clock) => head::deadline(clock, limit).await,
        None => std::future::pending().await,
    }
}
