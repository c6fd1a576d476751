//! The floor under berth-proxy for `bench/proxy.sh`: the same hyper server
//! and hyper-util pooled client on the same per-thread runtimes, with
//! nothing else (no routing, headers, metrics, limits or logs). What berth
//! costs above this is berth's; the rest is the libraries'.
//!
//! With `h1` as third argument, the client is instead a hand-made
//! per-worker pool over `hyper::client::conn::http1`: what replacing
//! hyper-util's legacy client would gain. That pool has none of the legacy
//! client's care (no retry of a request a closing pooled connection
//! cancelled, no idle expiry, no cap).
//!
//! usage: bench_floor LISTEN UPSTREAM [h1]   (e.g. 127.0.0.1:18084 127.0.0.1:18081)

use http::uri::{Authority, Scheme};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:18084".into());
    let upstream: Authority = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:18081".into())
        .parse()?;
    let h1 = args.next().as_deref() == Some("h1");
    let listener = std::net::TcpListener::bind(&listen)?;
    listener.set_nonblocking(true)?;
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let mut threads = Vec::new();
    for _ in 0..workers {
        let (listener, upstream) = (listener.try_clone()?, upstream.clone());
        threads.push(std::thread::spawn(move || worker(listener, upstream, h1)));
    }
    for thread in threads {
        thread.join().map_err(|_| "worker panicked")??;
    }
    Ok(())
}

fn worker(listener: std::net::TcpListener, upstream: Authority, h1: bool) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if h1 {
        runtime.block_on(h1::serve(listener, upstream))
    } else {
        runtime.block_on(serve(listener, upstream))
    }
}

async fn serve(listener: std::net::TcpListener, upstream: Authority) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let client: Client<_, Incoming> = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .build_http();
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let (client, upstream) = (client.clone(), upstream.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
                let (client, upstream) = (client.clone(), upstream.clone());
                async move {
                    let mut parts = http::uri::Parts::default();
                    parts.scheme = Some(Scheme::HTTP);
                    parts.authority = Some(upstream);
                    parts.path_and_query = req.uri().path_and_query().cloned();
                    *req.uri_mut() = http::Uri::from_parts(parts).map_err(std::io::Error::other)?;
                    client.request(req).await.map_err(std::io::Error::other)
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The floor with a per-worker pool over hyper's http1 client connections.
mod h1 {
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use http::uri::Authority;
    use hyper::body::{Body, Frame, Incoming};
    use hyper::client::conn::http1::SendRequest;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    type Pool = Arc<Mutex<Vec<SendRequest<Incoming>>>>;

    struct Pooled {
        inner: Incoming,
        back: Option<(SendRequest<Incoming>, Pool)>,
    }

    impl Pooled {
        fn release(&mut self) {
            if let Some((tx, pool)) = self.back.take() {
                pool.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(tx);
            }
        }
    }

    impl Body for Pooled {
        type Data = Bytes;
        type Error = hyper::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
            let r = Pin::new(&mut self.inner).poll_frame(cx);
            match &r {
                Poll::Ready(None) => self.release(),
                Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.release(),
                Poll::Ready(Some(Err(_))) => self.back = None,
                _ => {}
            }
            r
        }
        fn is_end_stream(&self) -> bool {
            self.inner.is_end_stream()
        }
        fn size_hint(&self) -> hyper::body::SizeHint {
            self.inner.size_hint()
        }
    }

    /// An idle connection that can take a request, or a new one.
    async fn checkout(pool: &Pool, upstream: &str) -> std::io::Result<SendRequest<Incoming>> {
        loop {
            let idle = pool
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop();
            match idle {
                Some(tx) if tx.is_ready() => return Ok(tx),
                Some(_) => continue,
                None => break,
            }
        }
        let stream = tokio::net::TcpStream::connect(upstream).await?;
        stream.set_nodelay(true)?;
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(tx)
    }

    pub(super) async fn serve(
        listener: std::net::TcpListener,
        upstream: Authority,
    ) -> Result<(), super::Error> {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let pool: Pool = Arc::default();
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let (pool, upstream) = (pool.clone(), upstream.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let (pool, upstream) = (pool.clone(), upstream.clone());
                    async move {
                        let mut tx = checkout(&pool, upstream.as_str()).await?;
                        let resp = tx.send_request(req).await.map_err(std::io::Error::other)?;
                        let (parts, inner) = resp.into_parts();
                        let mut body = Pooled {
                            inner,
                            back: Some((tx, pool)),
                        };
                        if body.inner.is_end_stream() {
                            body.release();
                        }
                        Ok::<_, std::io::Error>(http::Response::from_parts(parts, body))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await;
            });
        }
    }
}
