//! One client connection: HTTP/1.1 or HTTP/2 (prior knowledge) through
//! hyper-util's auto builder, with upgrades, the header read timeout (which
//! needs hyper's timer to work at all), the idle keep-alive timeout and
//! graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;

use crate::activity::{Activity, Tracked, idle};
use crate::client::UpstreamClient;
use crate::service::Edge;
use crate::shared::Shared;

/// hyper's read buffer cannot be smaller than this.
const MIN_BUF: usize = 8 * 1024;

/// The connection builder shared by every listener.
pub(crate) fn builder(shared: &Shared) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let head = usize::try_from(shared.max_header)
        .unwrap_or(usize::MAX)
        .max(MIN_BUF);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.timeouts.header_read)
        .max_buf_size(head.saturating_add(MIN_BUF))
        .keep_alive(true);
    // No HTTP/2 keep-alive pings: their answers would count as traffic and
    // keep idle connections open past the idle timeout.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(shared.max_header).unwrap_or(u32::MAX));
    builder
}

/// Serves one accepted connection until it closes, idles out or shutdown
/// ends it (gracefully first, dropped at the hard stop).
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    client: UpstreamClient,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::default());
    let io = TokioIo::new(Tracked::new(stream, activity.clone()));
    let service = Edge::new(shared.clone(), client, peer, activity.clone());
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    // A token of its own: polling the shared one on every wake-up would
    // take a lock every worker contends for.
    let shutdown = shared.shutdown.child_token();
    let finished = tokio::select! {
        biased;
        result = conn.as_mut() => Some(result),
        () = shutdown.cancelled() => None,
        () = idle(&activity, shared.timeouts.idle) => None,
    };
    if let Some(result) = finished {
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
        return;
    }
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
