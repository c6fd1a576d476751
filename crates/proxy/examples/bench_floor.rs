//! The floor under berth-proxy for `bench/proxy.sh`: the same hyper server
//! and hyper-util pooled client on the same per-thread runtimes, with
//! nothing else (no routing, headers, metrics, limits or logs). What berth
//! costs above this is berth's; the rest is the libraries'.
//!
//! usage: bench_floor LISTEN UPSTREAM   (e.g. 127.0.0.1:18084 127.0.0.1:18081)

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
    let listener = std::net::TcpListener::bind(&listen)?;
    listener.set_nonblocking(true)?;
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let mut threads = Vec::new();
    for _ in 0..workers {
        let (listener, upstream) = (listener.try_clone()?, upstream.clone());
        threads.push(std::thread::spawn(move || worker(listener, upstream)));
    }
    for thread in threads {
        thread.join().map_err(|_| "worker panicked")??;
    }
    Ok(())
}

fn worker(listener: std::net::TcpListener, upstream: Authority) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(listener, upstream))
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
