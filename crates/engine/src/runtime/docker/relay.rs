//! A container's port the engine did not publish: one on `internal`
//! networks only (the engine publishes nothing there, as none of them
//! has a route out). The host still reaches the container's address on
//! the network's bridge, so berth listens on the loopback port it chose
//! for the replica and relays each connection there: the proxy, the
//! forwarders and the probes see the same loopback port as for any
//! other replica.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Listens on `from` and relays every connection to `to`, until the
/// returned task is aborted.
///
/// # Errors
/// When `from` cannot be bound.
pub async fn start(from: SocketAddr, to: SocketAddr) -> std::io::Result<JoinHandle<()>> {
    let listener = TcpListener::bind(from).await?;
    Ok(tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((mut client, _)) = accepted else { continue };
                    connections.spawn(async move {
                        if let Ok(mut upstream) = TcpStream::connect(to).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                        }
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_connection_reaches_the_address_behind_the_port() {
        let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let to = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut c, _) = upstream.accept().await.unwrap();
            c.write_all(b"behind").await.unwrap();
        });
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let from = free.local_addr().unwrap();
        drop(free);
        let relay = super::start(from, to).await.unwrap();
        let mut client = tokio::net::TcpStream::connect(from).await.unwrap();
        let mut got = String::new();
        client.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "behind");
        relay.abort();
    }
}
