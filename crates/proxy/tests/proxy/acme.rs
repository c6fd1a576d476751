//! Automatic certificates against a real ACME server: Debian's `pebble`
//! (with `pebble-challtestsrv` answering its DNS queries with 127.0.0.1),
//! started per test on free ports, validating against the proxy's plain
//! (http-01) or TLS (tls-alpn-01) listener.
//!
//! Each test starts the proxy first with TLS but no ACME (so its ports are
//! known), tells pebble those ports, then turns ACME on with `replace`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth_compose::xberth::{AcmeChallenge, AcmeSettings, ProxySettings};
use berth_proxy::{CertificateStatus, RouteTable};
use http::StatusCode;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::support::*;
use crate::tls::{Secure, TestCa, connector, fetch, start_tls, tls_settings};

/// The name certificates are ordered for (challtestsrv resolves it, like
/// any name, to 127.0.0.1).
const NAME: &str = "berth.localhost";
const WWW: &str = "www.berth.localhost";
/// How long pebble may take to come up, and an order to go through.
const PATIENCE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- pebble

/// A port nobody listens on right now (pebble binds it a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether the DNS server on `port` answers an A query for [`NAME`] (within
/// 100 ms).
fn dns_answers(port: u16) -> bool {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // Header: id, recursion desired, one question; then the name, A, IN.
    let mut query = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in NAME.split('.') {
        query.push(u8::try_from(label.len()).unwrap());
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    if socket.send_to(&query, ("127.0.0.1", port)).is_err() {
        return false;
    }
    let mut answer = [0u8; 512];
    matches!(socket.recv(&mut answer), Ok(n) if n >= 12 && answer[..2] == [0x12, 0x34])
}

/// Kills the process when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// pebble and its DNS server, for one test.
struct Pebble {
    dir: tempfile::TempDir,
    pebble: Option<Killed>,
    _dns: Killed,
    /// The ACME directory URL.
    directory: String,
    /// Trusts pebble's HTTPS certificate (the test CA).
    ca_root: PathBuf,
    management: SocketAddr,
    https: TestCa,
}

impl Pebble {
    /// Validates http-01 on `http_port` and tls-alpn-01 on `tls_port`.
    async fn start(http_port: u16, tls_port: u16) -> Pebble {
        let dir = tempfile::tempdir().unwrap();
        let https = TestCa::new();
        let (cert, key) = https.issue(&["localhost", "127.0.0.1"]);
        std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
        std::fs::write(dir.path().join("key.pem"), key).unwrap();
        let ca_root = dir.path().join("pebble-https-ca.pem");
        std::fs::write(&ca_root, &https.pem).unwrap();
        let dns_port = free_port();
        let dns = Killed(
            Command::new("pebble-challtestsrv")
                .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
                .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
                .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
                .args(["-management", &format!("127.0.0.1:{}", free_port())])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("pebble-challtestsrv (Debian package pebble) is installed"),
        );
        let deadline = Instant::now() + PATIENCE;
        while !dns_answers(dns_port) {
            assert!(
                Instant::now() < deadline,
                "pebble-challtestsrv did not come up"
            );
        }
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let management: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config = serde_json::json!({"pebble": {
            "listenAddress": listen.to_string(),
            "managementListenAddress": management.to_string(),
            "certificate": dir.path().join("cert.pem"),
            "privateKey": dir.path().join("key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        let config_path = dir.path().join("pebble-config.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let log = std::fs::File::create(dir.path().join("pebble.log")).unwrap();
        let pebble = Killed(
            Command::new("pebble")
                .arg("-config")
                .arg(&config_path)
                .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env("PEBBLE_WFE_NONCEREJECT", "0")
                .env("PEBBLE_AUTHZREUSE", "0")
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("pebble (Debian package pebble) is installed"),
        );
        let pebble = Pebble {
            dir,
            pebble: Some(pebble),
            _dns: dns,
            directory: format!("https://{listen}/dir"),
            ca_root,
            management,
            https,
        };
        let deadline = Instant::now() + PATIENCE;
        while pebble.get(listen, "/dir").await.is_err() {
            assert!(
                Instant::now() < deadline,
                "pebble did not come up: {}",
                pebble.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        pebble
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }

    /// A GET over pebble's HTTPS (its certificate from the test CA).
    async fn get(&self, addr: SocketAddr, path: &str) -> Result<Answer, String> {
        let client = connector(self.https.roots(), &[b"http/1.1"]);
        let got = fetch(&client, addr, "localhost", path).await?;
        match got.answer.status {
            StatusCode::OK => Ok(got.answer),
            other => Err(format!("{path}: {other}")),
        }
    }

    /// The roots pebble issues under (made anew at each start).
    async fn issuing_roots(&self) -> rustls::RootCertStore {
        let pem = self.get(self.management, "/roots/0").await.unwrap().body;
        let mut roots = rustls::RootCertStore::empty();
        for der in CertificateDer::pem_slice_iter(&pem) {
            roots.add(der.unwrap()).unwrap();
        }
        assert!(!roots.is_empty());
        roots
    }

    fn stop(&mut self) {
        self.pebble = None;
    }
}

// ---------------------------------------------------------------- the proxy

/// Proxy settings with `tls.acme` ordering [`NAME`] and [`WWW`] from `pebble`.
fn acme_settings(pebble: &Pebble, challenge: AcmeChallenge) -> ProxySettings {
    let mut settings = tls_settings(vec![service_route("/", "web")], vec![]);
    let tls = settings.tls.as_mut().unwrap();
    tls.acme = Some(AcmeSettings {
        email: Some("ops@example.org".into()),
        domains: vec![NAME.into(), WWW.into()],
        directory: pebble.directory.clone(),
        challenge,
        ca_root: Some(pebble.ca_root.clone()),
    });
    settings
}

/// The proxy with TLS but no ACME yet, keeping its state in `state`.
async fn proxy(state: &Path) -> Secure {
    let settings = tls_settings(vec![service_route("/", "web")], vec![]);
    start_tls(settings, FakeStack::new(), Some(state.to_path_buf())).await
}

fn routes(secure: &Secure) -> RouteTable {
    secure.running.proxy.as_ref().unwrap().routes()
}

fn acme(routes: &RouteTable) -> CertificateStatus {
    routes
        .certificates()
        .into_iter()
        .find(|c| c.source == "acme")
        .expect("an acme entry")
}

/// Polls the ACME status until `done` says so, failing with it at the deadline.
async fn until(routes: &RouteTable, what: &str, done: impl Fn(&CertificateStatus) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = acme(routes);
        if done(&status) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {status:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn has_certificate(status: &CertificateStatus) -> bool {
    status.not_after.is_some()
}

/// The leaf served for `name`, checked against pebble's roots.
async fn served_leaf(
    secure: &Secure,
    roots: rustls::RootCertStore,
    name: &str,
) -> Result<CertificateDer<'static>, String> {
    let got = fetch(&connector(roots, &[b"h2"]), secure.tls_addr, name, "/").await?;
    Ok(got.leaf)
}

/// An HTTP/2 connection to the TLS listener for [`NAME`], and the leaf it got.
async fn h2_connection(
    secure: &Secure,
    roots: rustls::RootCertStore,
) -> (
    hyper::client::conn::http2::SendRequest<http_body_util::Full<bytes::Bytes>>,
    CertificateDer<'static>,
) {
    let tcp = tokio::net::TcpStream::connect(secure.tls_addr)
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from(NAME).unwrap();
    let tls = connector(roots, &[b"h2"]).connect(name, tcp).await.unwrap();
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let io = hyper_util::rt::TokioIo::new(tls);
    let (send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .unwrap();
    tokio::spawn(conn);
    (send, leaf)
}

async fn health(
    send: &mut hyper::client::conn::http2::SendRequest<http_body_util::Full<bytes::Bytes>>,
) -> StatusCode {
    let request = http::Request::get(format!("https://{NAME}/health"))
        .body(http_body_util::Full::default())
        .unwrap();
    send.send_request(request).await.unwrap().status()
}

/// The kept files under `state` (account, chain, key), each mode 0600.
fn kept_files(state: &Path) -> Vec<PathBuf> {
    let acme = state.join("acme");
    let hosts: Vec<PathBuf> = std::fs::read_dir(&acme)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&hosts[0])
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Orders through `challenge` and checks what is served and kept.
async fn obtains_and_serves(challenge: AcmeChallenge) {
    let state = tempfile::tempdir().unwrap();
    let secure = proxy(state.path()).await;
    let pebble = Pebble::start(secure.running.addr.port(), secure.tls_addr.port()).await;
    let routes = routes(&secure);
    routes.replace(&acme_settings(&pebble, challenge)).unwrap();
    until(&routes, "a certificate", has_certificate).await;
    let status = acme(&routes);
    assert_eq!(status.names, [NAME, WWW]);
    let acme_status = status.acme.unwrap();
    assert_eq!((acme_status.orders, acme_status.failures), (1, 0));
    assert_eq!(acme_status.challenge, challenge.as_str());
    assert!(acme_status.next_attempt.is_some());
    let roots = pebble.issuing_roots().await;
    for name in [NAME, WWW] {
        let got = fetch(
            &connector(roots.clone(), &[b"h2"]),
            secure.tls_addr,
            name,
            "/health",
        )
        .await
        .unwrap();
        assert_eq!(got.answer.status, StatusCode::OK, "{name}");
    }
    let files = kept_files(state.path());
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["account.json", "berth.localhost.key", "berth.localhost.pem"]
    );
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    assert_eq!(mode(files[0].parent().unwrap()), 0o700);
    let kept = CertificateDer::from_pem_file(&files[2]).unwrap();
    assert_eq!(served_leaf(&secure, roots, NAME).await.unwrap(), kept);
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_obtains_serves_and_keeps_a_certificate() {
    obtains_and_serves(AcmeChallenge::Http01).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn01_obtains_serves_and_keeps_a_certificate() {
    obtains_and_serves(AcmeChallenge::TlsAlpn01).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_swaps_the_certificate_in_while_clients_connect() {
    let state = tempfile::tempdir().unwrap();
    let secure = Arc::new(proxy(state.path()).await);
    let pebble = Pebble::start(secure.running.addr.port(), secure.tls_addr.port()).await;
    let routes = routes(&secure);
    routes
        .replace(&acme_settings(&pebble, AcmeChallenge::Http01))
        .unwrap();
    until(&routes, "a certificate", has_certificate).await;
    let roots = pebble.issuing_roots().await;
    let first = served_leaf(&secure, roots.clone(), NAME).await.unwrap();
    // A connection opened before the renewal, used again after it.
    let (mut open, open_leaf) = h2_connection(&secure, roots.clone()).await;
    assert_eq!(open_leaf, first);
    assert_eq!(health(&mut open).await, StatusCode::OK);

    let stop = Arc::new(AtomicBool::new(false));
    let (done, failures, renewed) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let deadline = Instant::now() + PATIENCE;
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (secure, roots, first) = (secure.clone(), roots.clone(), first.clone());
            let (stop, done, failures, renewed) = (
                stop.clone(),
                done.clone(),
                failures.clone(),
                renewed.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    match served_leaf(&secure, roots.clone(), NAME).await {
                        Ok(leaf) if leaf != first => renewed.fetch_add(1, Ordering::Relaxed),
                        Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            eprintln!("request failed: {e}");
                            failures.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();
    while done.load(Ordering::Relaxed) < 20 {
        assert!(Instant::now() < deadline, "clients made no requests");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    routes.renew_certificates();
    until(&routes, "a second order", |s| {
        s.acme
            .as_ref()
            .is_some_and(|a| a.orders == 2 && a.failures == 0)
    })
    .await;
    // Clients see the new certificate, then keep going on it a while.
    let seen = renewed.load(Ordering::Relaxed);
    while renewed.load(Ordering::Relaxed) < seen + 20 {
        assert!(
            Instant::now() < deadline,
            "the new certificate is not served"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    eprintln!(
        "requests: {} old, {} new",
        done.load(Ordering::Relaxed),
        renewed.load(Ordering::Relaxed)
    );
    assert_eq!(failures.load(Ordering::Relaxed), 0);
    let second = served_leaf(&secure, roots, NAME).await.unwrap();
    assert_ne!(second, first);
    assert_eq!(
        health(&mut open).await,
        StatusCode::OK,
        "the old connection goes on"
    );
    let files = kept_files(state.path());
    assert_eq!(CertificateDer::from_pem_file(&files[2]).unwrap(), second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reuses_the_kept_certificate_and_a_failed_renewal_keeps_it_serving() {
    let state = tempfile::tempdir().unwrap();
    let secure = proxy(state.path()).await;
    let mut pebble = Pebble::start(secure.running.addr.port(), secure.tls_addr.port()).await;
    let settings = acme_settings(&pebble, AcmeChallenge::Http01);
    routes(&secure).replace(&settings).unwrap();
    until(&routes(&secure), "a certificate", has_certificate).await;
    let roots = pebble.issuing_roots().await;
    let first = served_leaf(&secure, roots.clone(), NAME).await.unwrap();
    secure.running.stop().await;

    // Started again with ACME from the start: the kept certificate, no order.
    let again = start_tls(settings, FakeStack::new(), Some(state.path().to_path_buf())).await;
    let routes = routes(&again);
    until(&routes, "the kept certificate", has_certificate).await;
    assert_eq!(
        served_leaf(&again, roots.clone(), NAME).await.unwrap(),
        first
    );
    let status = acme(&routes).acme.unwrap();
    assert_eq!((status.orders, status.failures), (0, 0), "{status:?}");

    // The CA gone, a renewal fails, is reported, and the old one serves on.
    pebble.stop();
    routes.set_acme_retry_base(Duration::from_secs(3600));
    routes.renew_certificates();
    until(&routes, "a failed renewal", |s| {
        s.acme.as_ref().is_some_and(|a| a.failures == 1)
    })
    .await;
    let status = acme(&routes);
    let error = status.acme.as_ref().unwrap().last_error.clone().unwrap();
    assert!(
        error.starts_with("reaching the CA") && error.contains("Connection refused"),
        "{error}"
    );
    eprintln!("reported: {error}");
    assert!(status.not_after.is_some());
    assert_eq!(served_leaf(&again, roots, NAME).await.unwrap(), first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_order_is_reported_with_the_cas_error_and_retried_while_http_serves() {
    let state = tempfile::tempdir().unwrap();
    let secure = proxy(state.path()).await;
    // pebble checks http-01 on a port where nothing listens.
    let pebble = Pebble::start(free_port(), secure.tls_addr.port()).await;
    let routes = routes(&secure);
    routes.set_acme_retry_base(Duration::from_millis(200));
    routes
        .replace(&acme_settings(&pebble, AcmeChallenge::Http01))
        .unwrap();
    until(&routes, "two failed orders", |s| {
        s.acme
            .as_ref()
            .is_some_and(|a| a.failures >= 2 && a.orders >= 2)
    })
    .await;
    let status = acme(&routes);
    assert_eq!(status.not_after, None);
    let acme_status = status.acme.unwrap();
    let error = acme_status.last_error.unwrap();
    // pebble's problem document: the type and its detail.
    assert!(
        error.contains("urn:ietf:params:acme:error:connection") && error.contains(NAME),
        "{error}"
    );
    assert!(acme_status.next_attempt.is_some());
    // Plain HTTP serves meanwhile; TLS has no certificate for the name.
    let health = get(&secure.running.url("/health")).await;
    assert_eq!(health.status, StatusCode::OK);
    let roots = pebble.issuing_roots().await;
    assert!(served_leaf(&secure, roots, NAME).await.is_err());
}

#[tokio::test]
async fn acme_without_a_state_directory_is_refused() {
    let mut settings = tls_settings(vec![service_route("/", "web")], vec![]);
    settings.tls.as_mut().unwrap().acme = Some(AcmeSettings {
        email: None,
        domains: vec![NAME.into()],
        directory: "https://127.0.0.1:1/dir".into(),
        challenge: AcmeChallenge::Http01,
        ca_root: None,
    });
    let shutdown = berth_proxy::CancellationToken::new();
    let options = berth_proxy::ServeOptions::default();
    let err = berth_proxy::serve_with(settings, FakeStack::new(), shutdown, options)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tls.acme") && err.contains("state directory"),
        "{err}"
    );
}
