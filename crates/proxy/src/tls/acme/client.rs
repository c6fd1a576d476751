//! The HTTPS client that talks to the CA: the system's trust roots plus
//! `ca_root` (a test or private CA), on berth's rustls provider.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// A client trusting the system's roots and the certificates in `ca_root`.
pub(crate) fn http_client(
    provider: &Arc<CryptoProvider>,
    ca_root: Option<&Path>,
) -> Result<Box<dyn HttpClient>, String> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = ca_root {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read ca_root {}: {e}", path.display()))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("ca_root {}: not PEM certificates ({e})", path.display()))?;
        if certs.is_empty() {
            return Err(format!("ca_root {} holds no certificate", path.display()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("ca_root {}: {e}", path.display()))?;
        }
    }
    if roots.is_empty() {
        return Err(
            "no trust roots to check the CA with: install the system's CA certificates or set ca_root"
                .into(),
        );
    }
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    Ok(Box::new(CaClient(
        Client::builder(TokioExecutor::new()).build(connector),
    )))
}

/// hyper's pooled client, as instant-acme's [`HttpClient`].
struct CaClient(Client<HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>);

impl HttpClient for CaClient {
    fn request(
        &self,
        request: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let response = self.0.request(request);
        Box::pin(async move {
            response
                .await
                .map(BytesResponse::from)
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))
        })
    }
}
