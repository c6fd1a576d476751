//! TLS listeners: certificates by SNI, ALPN h2 and http/1.1, old protocol
//! versions refused, certificates replaced on disk while clients connect,
//! `redirect_http`, HSTS, the development certificate, and certificate
//! errors that say which entry and what is wrong.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use berth_compose::xberth::{CertificateFiles, TlsSettings, TlsVersion};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

// ---------------------------------------------------------------- a test CA

/// A CA of the test's own, issuing leaf certificates for names.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub pem: String,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "berth test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A leaf for `names` (PEM chain, PEM key).
    pub fn issue(&self, names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_string()).collect();
        let params = rcgen::CertificateParams::new(names).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Writes a leaf for `names` as `<stem>.pem` and `<stem>.key` in `dir`.
    pub fn write(&self, dir: &Path, stem: &str, names: &[&str]) -> CertificateFiles {
        let (cert, key) = self.issue(names);
        let files = CertificateFiles {
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}.key")),
            written_at: format!("compose.yaml ({stem})"),
        };
        std::fs::write(&files.cert, cert).unwrap();
        std::fs::write(&files.key, key).unwrap();
        files
    }

    pub fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(self.pem.as_bytes()).unwrap();
        roots.add(der).unwrap();
        roots
    }
}

/// The proxy on a plain and a TLS listener (both port 0) with these certificates.
pub fn tls_settings(
    routes: Vec<berth_compose::xberth::Route>,
    certificates: Vec<CertificateFiles>,
) -> berth_compose::xberth::ProxySettings {
    let mut s = settings(routes);
    s.listen_tls = vec!["127.0.0.1:0".into()];
    s.tls = Some(TlsSettings {
        certificates,
        acme: None,
        self_signed: false,
        min_version: TlsVersion::Tls12,
    });
    s
}

pub struct Secure {
    pub running: Running,
    pub tls_addr: SocketAddr,
}

pub async fn start_tls(
    settings: berth_compose::xberth::ProxySettings,
    view: Arc<FakeStack>,
    state_dir: Option<PathBuf>,
) -> Secure {
    let shutdown = CancellationToken::new();
    let options = berth_proxy::ServeOptions {
        state_dir,
        ..berth_proxy::ServeOptions::default()
    };
    let proxy = berth_proxy::serve_with(settings, view, shutdown.clone(), options)
        .await
        .unwrap();
    let tls_addr = proxy.tls_addrs()[0];
    Secure {
        running: Running {
            addr: proxy.local_addrs().first().copied().unwrap_or(tls_addr),
            shutdown,
            proxy: Some(proxy),
        },
        tls_addr,
    }
}

use berth_proxy::CancellationToken;

// ---------------------------------------------------------------- a TLS client

/// What a handshake and one GET over it gave.
pub struct Fetched {
    pub alpn: Option<Vec<u8>>,
    pub leaf: CertificateDer<'static>,
    pub version: rustls::ProtocolVersion,
    pub resumed: bool,
    pub answer: Answer,
}

/// A client that makes a full handshake every time (a resumed session
/// would show the certificate of the session it resumes).
pub fn connector(roots: rustls::RootCertStore, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let connector = resuming(roots, alpn);
    let mut config = (*connector.config().clone()).clone();
    config.resumption = rustls::client::Resumption::disabled();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A client that resumes sessions, as browsers do.
pub fn resuming(roots: rustls::RootCertStore, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Connects to `addr` naming `sni`, then GETs `path` over HTTP/2 or
/// HTTP/1.1, as ALPN decided.
pub async fn fetch(
    connector: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
    sni: &str,
    path: &str,
) -> Result<Fetched, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from(sni.to_string()).map_err(|e| e.to_string())?;
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (_, session) = tls.get_ref();
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    let leaf = session.peer_certificates().unwrap()[0].clone().into_owned();
    let version = session.protocol_version().unwrap();
    let resumed = session.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    let io = TokioIo::new(tls);
    let req = Request::get(format!("https://{sni}:{}{path}", addr.port()))
        .body(Full::<Bytes>::default())
        .unwrap();
    let response = if alpn.as_deref() == Some(b"h2") {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(req).await.map_err(|e| e.to_string())?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let (mut parts, body) = req.into_parts();
        parts.uri = path.parse().unwrap();
        parts
            .headers
            .insert("host", format!("{sni}:{}", addr.port()).parse().unwrap());
        send.send_request(Request::from_parts(parts, body))
            .await
            .map_err(|e| e.to_string())?
    };
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Fetched {
        alpn,
        leaf,
        version,
        resumed,
        answer: Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        },
    })
}

fn pem_der(path: &Path) -> CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_file(path).unwrap()
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn sni_picks_the_certificate_for_the_name_and_alpn_negotiates_h2() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let a = ca.write(dir.path(), "a", &["a.test"]);
    let b = ca.write(dir.path(), "b", &["b.test", "*.b.test"]);
    let stack = FakeStack::new();
    let api = backend("api-1").await;
    stack.set("api", &[&api]);
    let secure = start_tls(
        tls_settings(vec![service_route("/", "api")], vec![a.clone(), b.clone()]),
        stack,
        None,
    )
    .await;
    let h2 = connector(ca.roots(), &[b"h2", b"http/1.1"]);
    let got = fetch(&h2, secure.tls_addr, "a.test", "/x").await.unwrap();
    assert_eq!(got.leaf, pem_der(&a.cert));
    assert_eq!(got.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(got.answer.status, StatusCode::OK);
    let seen = got.answer.json();
    assert_eq!(seen["headers"]["x-forwarded-proto"], "https", "{seen}");
    for name in ["b.test", "www.b.test"] {
        let got = fetch(&h2, secure.tls_addr, name, "/").await.unwrap();
        assert_eq!(got.leaf, pem_der(&b.cert), "{name}");
    }
    let h1 = connector(ca.roots(), &[b"http/1.1"]);
    let got = fetch(&h1, secure.tls_addr, "b.test", "/").await.unwrap();
    assert_eq!(got.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(got.answer.status, StatusCode::OK);
    assert_eq!(got.answer.json()["version"], "HTTP/1.1");
    // Sessions resume, by ticket (TLS 1.3) and by id or ticket (TLS 1.2).
    let browser = resuming(ca.roots(), &[b"h2"]);
    let first = fetch(&browser, secure.tls_addr, "a.test", "/")
        .await
        .unwrap();
    let again = fetch(&browser, secure.tls_addr, "a.test", "/")
        .await
        .unwrap();
    assert!(!first.resumed && again.resumed);
    // A name no certificate has gets the first one: the client refuses it.
    let err = fetch(&h2, secure.tls_addr, "c.test", "/")
        .await
        .err()
        .unwrap();
    assert!(err.contains("handshake"), "{err}");
    secure.running.stop().await;
}

/// A ClientHello offering at most `version` (0x0301 TLS 1.0, 0x0302 TLS
/// 1.1, 0x0303 TLS 1.2) with ECDHE suites, as old clients send it.
fn client_hello(version: u16) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&version.to_be_bytes());
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // no session id
    let suites: [u16; 4] = [0xc02b, 0xc02f, 0xc013, 0xc009];
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]); // compression: null
    let mut ext = Vec::new();
    // supported_groups: x25519, secp256r1
    ext.extend_from_slice(&[0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17]);
    // ec_point_formats: uncompressed
    ext.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256
    ext.extend_from_slice(&[
        0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01,
    ]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut handshake = vec![1u8]; // ClientHello
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// The first record the server answers `hello` with: (content type, first
/// two bytes of its payload).
async fn first_record(addr: SocketAddr, hello: &[u8]) -> (u8, [u8; 2]) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(hello).await.unwrap();
    let mut head = [0u8; 7];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut head))
        .await
        .unwrap()
        .unwrap();
    (head[0], [head[5], head[6]])
}

#[tokio::test]
async fn tls_1_0_and_1_1_are_refused_and_1_3_only_refuses_1_2() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let cert = ca.write(dir.path(), "site", &["localhost"]);
    let stack = FakeStack::new();
    let secure = start_tls(
        tls_settings(vec![], vec![cert.clone()]),
        stack.clone(),
        None,
    )
    .await;
    const HANDSHAKE: u8 = 0x16;
    const ALERT: u8 = 0x15;
    // Alert: fatal (2), protocol_version (70).
    for old in [0x0301, 0x0302] {
        let got = first_record(secure.tls_addr, &client_hello(old)).await;
        assert_eq!(got, (ALERT, [2, 70]), "version {old:#06x}");
    }
    // The same hello saying TLS 1.2 gets a ServerHello (handshake type 2).
    let (kind, payload) = first_record(secure.tls_addr, &client_hello(0x0303)).await;
    assert_eq!((kind, payload[0]), (HANDSHAKE, 2));
    secure.running.stop().await;

    let mut only13 = tls_settings(vec![], vec![cert]);
    only13.tls.as_mut().unwrap().min_version = TlsVersion::Tls13;
    let secure = start_tls(only13, stack, None).await;
    let got = first_record(secure.tls_addr, &client_hello(0x0303)).await;
    assert_eq!(got, (ALERT, [2, 70]), "TLS 1.2 under min_version 1.3");
    let client = connector(ca.roots(), &[b"http/1.1"]);
    let got = fetch(&client, secure.tls_addr, "localhost", "/")
        .await
        .unwrap();
    assert_eq!(got.version, rustls::ProtocolVersion::TLSv1_3);
    secure.running.stop().await;
}

#[tokio::test]
async fn a_certificate_replaced_on_disk_is_served_with_no_failed_request() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let cert = ca.write(dir.path(), "site", &["localhost"]);
    let first = pem_der(&cert.cert);
    let stack = FakeStack::new();
    let api = backend("api-1").await;
    stack.set("api", &[&api]);
    let secure = start_tls(
        tls_settings(vec![service_route("/", "api")], vec![cert.clone()]),
        stack,
        None,
    )
    .await;
    let client = connector(ca.roots(), &[b"h2", b"http/1.1"]);
    // Clients making new connections all along, each one request.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (client, stop, ok, failed) = (client.clone(), stop.clone(), ok.clone(), failed.clone());
        let addr = secure.tls_addr;
        load.spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match fetch(&client, addr, "localhost", "/").await {
                    Ok(f) if f.answer.status == StatusCode::OK => ok.fetch_add(1, Ordering::SeqCst),
                    Ok(f) => panic!("status {}", f.answer.status),
                    Err(e) => {
                        eprintln!("failed: {e}");
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                };
            }
        });
    }
    // A new certificate goes in the way tools do it: a new file renamed over the old.
    let (pem, key) = ca.issue(&["localhost"]);
    let staging = dir.path().join("next.key");
    std::fs::write(&staging, key).unwrap();
    std::fs::rename(&staging, &cert.key).unwrap();
    let staging = dir.path().join("next.pem");
    std::fs::write(&staging, &pem).unwrap();
    std::fs::rename(&staging, &cert.cert).unwrap();
    let second = pem_der(&cert.cert);
    assert_ne!(first, second);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = fetch(&client, secure.tls_addr, "localhost", "/")
            .await
            .unwrap();
        if got.leaf == second {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new certificate was not served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    while let Some(r) = load.join_next().await {
        r.unwrap();
    }
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    assert!(ok.load(Ordering::SeqCst) > 10, "too little load to tell");
    secure.running.stop().await;
}

/// Why the proxy does not start with these certificates.
async fn start_error(certificates: Vec<CertificateFiles>) -> String {
    let settings = tls_settings(vec![], certificates);
    let started = berth_proxy::serve(settings, FakeStack::new(), CancellationToken::new()).await;
    started.err().unwrap().to_string()
}

#[tokio::test]
async fn a_key_that_is_not_the_certificates_is_refused_at_start_with_its_entry() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let a = ca.write(dir.path(), "a", &["a.test"]);
    let b = ca.write(dir.path(), "b", &["b.test"]);
    let mixed = CertificateFiles {
        cert: a.cert.clone(),
        key: b.key.clone(),
        written_at: "compose.yaml:12".into(),
    };
    let err = start_error(vec![mixed]).await;
    assert!(err.starts_with("compose.yaml:12: "), "{err}");
    assert!(
        err.contains("b.key is not the private key of the certificate in"),
        "{err}"
    );
    std::fs::write(
        &a.key,
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = start_error(vec![a]).await;
    assert!(err.contains("a.key: the key cannot sign"), "{err}");
}

#[tokio::test]
async fn plain_listeners_redirect_to_https_and_tls_answers_carry_hsts() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let cert = ca.write(dir.path(), "site", &["localhost"]);
    let stack = FakeStack::new();
    let api = backend("api-1").await;
    stack.set("api", &[&api]);
    let mut s = tls_settings(vec![service_route("/", "api")], vec![cert]);
    s.redirect_http = true;
    s.hsts = 63_072_000;
    let secure = start_tls(s, stack, None).await;
    let plain = get(&secure.running.url("/a/b?c=1")).await;
    assert_eq!(plain.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        plain.header("location").unwrap(),
        format!("https://127.0.0.1:{}/a/b?c=1", secure.tls_addr.port())
    );
    assert!(plain.header("strict-transport-security").is_none());
    assert_eq!(api.hits.load(Ordering::SeqCst), 0);
    let client = connector(ca.roots(), &[b"h2"]);
    let got = fetch(&client, secure.tls_addr, "localhost", "/a")
        .await
        .unwrap();
    assert_eq!(got.answer.status, StatusCode::OK);
    assert_eq!(
        got.answer.header("strict-transport-security"),
        Some("max-age=63072000; includeSubDomains")
    );
    // Security headers are on by default over TLS.
    assert_eq!(got.answer.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(got.answer.header("x-frame-options"), Some("SAMEORIGIN"));
    // Errors too.
    let got = fetch(&client, secure.tls_addr, "localhost", "/metrics")
        .await
        .unwrap();
    assert!(got.answer.header("strict-transport-security").is_some());
    secure.running.stop().await;
}

#[tokio::test]
async fn the_development_certificate_is_made_once_and_kept_private() {
    let state = tempfile::tempdir().unwrap();
    let mut s = settings(vec![]);
    s.listen_tls = vec!["127.0.0.1:0".into()];
    s.tls = Some(TlsSettings {
        certificates: vec![],
        acme: None,
        self_signed: true,
        min_version: TlsVersion::Tls12,
    });
    let secure = start_tls(s.clone(), FakeStack::new(), Some(state.path().into())).await;
    let cert = state.path().join("tls/self-signed.pem");
    let key = state.path().join("tls/self-signed.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // It is the certificate served, and it is for localhost, 127.0.0.1 and ::1.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pem_der(&cert)).unwrap();
    let client = connector(roots, &[b"h2"]);
    for name in ["localhost", "127.0.0.1"] {
        let got = fetch(&client, secure.tls_addr, name, "/health")
            .await
            .unwrap();
        assert_eq!(got.answer.status, StatusCode::OK, "{name}");
    }
    let made = std::fs::read(&cert).unwrap();
    secure.running.stop().await;
    let again = start_tls(s, FakeStack::new(), Some(state.path().into())).await;
    assert_eq!(std::fs::read(&cert).unwrap(), made, "made again on restart");
    again.running.stop().await;
}

#[tokio::test]
async fn websockets_and_static_files_work_on_the_tls_listener() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let cert = ca.write(dir.path(), "site", &["localhost"]);
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("index.html"), "<html>over tls</html>").unwrap();
    let stack = FakeStack::new();
    let api = backend("api-1").await;
    stack.set("api", &[&api]);
    let secure = start_tls(
        tls_settings(
            vec![
                service_route("/ws", "api"),
                static_route("/", site.path().into(), true),
            ],
            vec![cert],
        ),
        stack,
        None,
    )
    .await;
    // Static files over HTTP/2.
    let h2 = connector(ca.roots(), &[b"h2", b"http/1.1"]);
    let got = fetch(&h2, secure.tls_addr, "localhost", "/deep/link")
        .await
        .unwrap();
    assert_eq!(got.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(
        (got.answer.status, got.answer.text().as_str()),
        (StatusCode::OK, "<html>over tls</html>")
    );
    // A WebSocket upgrades over HTTP/1.1 on the same listener.
    let h1 = connector(ca.roots(), &[b"http/1.1"]);
    let tcp = TcpStream::connect(secure.tls_addr).await.unwrap();
    let tls = h1
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let url = format!("wss://localhost:{}/ws", secure.tls_addr.port());
    let (mut ws, response) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    assert_eq!(response.status(), 101);
    ws.send(Message::text("hello over tls")).await.unwrap();
    let echoed = ws.next().await.unwrap().unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), "hello over tls");
    ws.close(None).await.unwrap();
    drop(ws);
    secure.running.stop().await;
}
