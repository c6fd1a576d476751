//! TCP forwarding from a service's declared ports to its ready replicas.
//!
//! berth listens on every declared port (published ones on their host IP,
//! `expose`-only ones on 127.0.0.1) and hands each connection to the next
//! ready replica, round robin, so services reach each other at
//! `localhost:<declared port>` however many replicas run and whichever are
//! restarting. A replica that refuses the connection is skipped for the
//! next one; with none ready, a connection waits a few seconds for one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::drain::{Drain, InFlight};

/// How long a connection waits for a ready replica, and for the connect.
const WAIT_FOR_BACKEND: Duration = Duration::from_secs(5);

/// The addresses of ready replicas for one declared port.
pub type Backends = Arc<[SocketAddr]>;

/// A listener that could not be opened, naming the port and the service.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} for service {service}: {reason}")]
pub struct BindError {
    pub addr: SocketAddr,
    pub service: String,
    pub reason: String,
}

/// Opens the listener for a service's declared port.
///
/// # Errors
/// A [`BindError`] naming the address and the service (e.g. the port is in use).
pub async fn bind(addr: SocketAddr, service: &str) -> Result<TcpListener, BindError> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    };
    let fail = |e: std::io::Error| BindError {
        addr,
        service: service.to_string(),
        reason: match e.kind() {
            std::io::ErrorKind::AddrInUse => "the port is already in use by another program".into(),
            std::io::ErrorKind::PermissionDenied => {
                "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)".into()
            }
            _ => e.to_string(),
        },
    };
    let socket = socket.map_err(fail)?;
    socket.set_reuseaddr(true).map_err(fail)?;
    socket.bind(addr).map_err(fail)?;
    socket.listen(1024).map_err(fail)
}

/// Forwards connections accepted on `listener` until `cancel`; connections
/// already forwarded go on until either side closes. Each one is counted
/// in `drain` against the replica it goes to.
pub fn serve(
    listener: TcpListener,
    backends: watch::Receiver<Backends>,
    drain: Arc<Drain>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let next = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = cancel.cancelled() => return,
            };
            let Ok((client, _)) = accepted else {
                // Out of file descriptors and the like: back off briefly.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let _ = client.set_nodelay(true);
            let backends = backends.clone();
            let next = next.clone();
            let drain = drain.clone();
            tokio::spawn(async move {
                if let Some((upstream, _guard)) = connect(backends, &next, &drain).await {
                    let _ = upstream.set_nodelay(true);
                    let (mut a, mut b) = (client, upstream);
                    let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
                }
            });
        }
    })
}

/// Connects to the next ready replica, trying each once, waiting for one
/// to be ready if none is.
async fn connect(
    mut backends: watch::Receiver<Backends>,
    next: &AtomicUsize,
    drain: &Arc<Drain>,
) -> Option<(TcpStream, InFlight)> {
    let deadline = tokio::time::Instant::now() + WAIT_FOR_BACKEND;
    loop {
        let list = backends.borrow_and_update().clone();
        if !list.is_empty() {
            let start = next.fetch_add(1, Ordering::Relaxed);
            for i in 0..list.len() {
                let addr = list[(start + i) % list.len()];
                // Counted from the moment it is chosen, so a replica being
                // drained never looks idle while a connection is on its way.
                let guard = drain.enter(addr);
                // The list may have changed since it was read: a replica
                // that left it may be draining, and its drain may already
                // have seen it idle. Counted first, checked second, so that
                // one of the two always sees the other.
                if !backends.borrow().contains(&addr) {
                    continue;
                }
                let remaining = deadline
                    .saturating_duration_since(tokio::time::Instant::now())
                    .max(Duration::from_millis(200));
                if let Ok(Ok(s)) = tokio::time::timeout(remaining, TcpStream::connect(addr)).await {
                    return Some((s, guard));
                }
            }
        }
        // Nothing ready, or all refused: wait for a change, until the deadline.
        let changed = tokio::time::timeout_at(deadline, backends.changed()).await;
        match changed {
            Ok(Ok(())) => continue,
            Ok(Err(_)) | Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn echo_server(tag: &'static str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let h = tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let _ = s.write_all(tag.as_bytes()).await;
                });
            }
        });
        (addr, h)
    }

    async fn read_tag(addr: SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).await.unwrap();
        buf
    }

    #[tokio::test]
    async fn round_robin_over_ready_backends_and_skips_dead_ones() {
        let (a, _ha) = echo_server("a").await;
        let (b, hb) = echo_server("b").await;
        let (tx, rx) = watch::channel::<Backends>(Arc::from(vec![a, b]));
        let listener = bind("127.0.0.1:0".parse().unwrap(), "svc").await.unwrap();
        let front = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        serve(listener, rx, Arc::default(), cancel.clone());
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(read_tag(front).await);
        }
        seen.sort();
        assert_eq!(seen, vec!["a", "a", "b", "b"]);
        // b dies but is still listed: its connections go to a. (Its task
        // has ended, its listener closed, once the handle says so.)
        hb.abort();
        assert!(hb.await.unwrap_err().is_cancelled());
        for _ in 0..4 {
            assert_eq!(read_tag(front).await, "a");
        }
        // No backend at all: a connection waits for one to become ready,
        // answered by none meanwhile (a 200 ms window: the thing checked is
        // that nothing happens).
        tx.send_replace(Arc::from(Vec::new()));
        let mut waiting = tokio::spawn(read_tag(front));
        let early = tokio::time::timeout(Duration::from_millis(200), &mut waiting).await;
        assert!(early.is_err(), "answered with no backend: {early:?}");
        tx.send_replace(Arc::from(vec![a]));
        assert_eq!(waiting.await.unwrap(), "a");
        cancel.cancel();
    }

    #[tokio::test]
    async fn a_port_in_use_names_the_port_and_the_service() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = bind(addr, "db").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot listen on {addr} for service db: the port is already in use by another program"
            )
        );
    }
}
