//! UDP forwarding from a container service's published `/udp` ports to
//! its ready replicas.
//!
//! UDP has no connections, so berth keeps one session per client address:
//! its first datagram picks the next ready replica (round robin) and opens
//! a socket of its own towards it; the replica's answers on that socket go
//! back to the client from the published port. A session ends after
//! [`IDLE`] without traffic, or as soon as its replica is no longer ready
//! (the client's next datagram picks another one), so a restart or a
//! rolling replacement moves clients on without them doing anything.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::forward::Backends;

/// How long a session lives without a datagram either way.
pub const IDLE: Duration = Duration::from_secs(60);

/// The largest datagram relayed.
const MAX_DATAGRAM: usize = 65_536;

/// Opens the published UDP port of a service.
///
/// # Errors
/// A [`crate::forward::BindError`] naming the address and the service.
pub async fn bind(addr: SocketAddr, service: &str) -> Result<UdpSocket, crate::forward::BindError> {
    UdpSocket::bind(addr)
        .await
        .map_err(|e| crate::forward::BindError {
            addr,
            service: service.to_string(),
            reason: match e.kind() {
                std::io::ErrorKind::AddrInUse => {
                    "the port is already in use by another program".into()
                }
                _ => e.to_string(),
            },
        })
}

/// One client's session: the socket towards its replica.
struct Session {
    replica: SocketAddr,
    upstream: Arc<UdpSocket>,
    /// Ends the task relaying the replica's answers.
    done: CancellationToken,
}

/// Relays datagrams arriving on `socket` to the ready replicas until
/// `cancel`.
pub fn serve(
    socket: UdpSocket,
    backends: watch::Receiver<Backends>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let socket = Arc::new(socket);
        let mut sessions: HashMap<SocketAddr, Session> = HashMap::new();
        let mut next = 0usize;
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let (n, client) = tokio::select! {
                r = socket.recv_from(&mut buf) => match r {
                    Ok(r) => r,
                    Err(_) => continue,
                },
                () = cancel.cancelled() => break,
            };
            let ready = backends.borrow().clone();
            sessions.retain(|_, s| !s.done.is_cancelled() && ready.contains(&s.replica));
            let session = match sessions.entry(client) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let Some(session) = open(&socket, client, &ready, &mut next, &cancel).await
                    else {
                        continue; // nothing ready: dropped, as a lost datagram
                    };
                    e.insert(session)
                }
            };
            if session.upstream.send(&buf[..n]).await.is_err() {
                session.done.cancel();
            }
        }
        for s in sessions.values() {
            s.done.cancel();
        }
    })
}

/// A session for `client` with the next ready replica, and the task
/// sending the replica's answers back to it.
async fn open(
    socket: &Arc<UdpSocket>,
    client: SocketAddr,
    ready: &Backends,
    next: &mut usize,
    cancel: &CancellationToken,
) -> Option<Session> {
    if ready.is_empty() {
        return None;
    }
    let replica = ready[*next % ready.len()];
    *next = next.wrapping_add(1);
    let upstream = UdpSocket::bind(SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), 0))
        .await
        .ok()?;
    upstream.connect(replica).await.ok()?;
    let upstream = Arc::new(upstream);
    let done = cancel.child_token();
    let (answers, back, stop) = (upstream.clone(), socket.clone(), done.clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let got = tokio::select! {
                r = tokio::time::timeout(IDLE, answers.recv(&mut buf)) => r,
                () = stop.cancelled() => return,
            };
            match got {
                Ok(Ok(n)) => {
                    let _ = back.send_to(&buf[..n], client).await;
                }
                // Idle, or the replica refused (ICMP): the session ends.
                Ok(Err(_)) | Err(_) => {
                    stop.cancel();
                    return;
                }
            }
        }
    });
    Some(Session {
        replica,
        upstream,
        done,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replica answering each datagram with its name and the datagram.
    async fn replica(name: &'static str) -> SocketAddr {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = s.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = s.recv_from(&mut buf).await {
                let answer = format!("{name}:{}", String::from_utf8_lossy(&buf[..n]));
                let _ = s.send_to(answer.as_bytes(), from).await;
            }
        });
        addr
    }

    async fn ask(client: &UdpSocket, text: &str) -> String {
        client.send(text.as_bytes()).await.unwrap();
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[tokio::test]
    async fn a_client_keeps_its_replica_and_moves_when_it_is_no_longer_ready() {
        let (a, b) = (replica("a").await, replica("b").await);
        let (tx, rx) = watch::channel::<Backends>(Arc::from(vec![a, b]));
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let published = socket.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let task = serve(socket, rx, cancel.clone());
        let one = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        one.connect(published).await.unwrap();
        let two = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        two.connect(published).await.unwrap();
        assert_eq!(ask(&one, "x").await, "a:x");
        assert_eq!(ask(&two, "y").await, "b:y");
        assert_eq!(ask(&one, "z").await, "a:z");
        tx.send(Arc::from(vec![b])).unwrap();
        assert_eq!(ask(&one, "w").await, "b:w");
        cancel.cancel();
        task.await.unwrap();
    }
}
