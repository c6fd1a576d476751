//! Answering the CA's challenges while an order is under way: http-01
//! tokens served by every listener at `/.well-known/acme-challenge/`, and
//! tls-alpn-01 certificates (RFC 8737) offered only to `acme-tls/1`
//! handshakes. Each answer is withdrawn when the [`Answers`] is dropped.

use std::sync::{Arc, PoisonError};

use instant_acme::KeyAuthorization;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::Shared;

/// The answers given for one order.
#[derive(Debug)]
pub(crate) struct Answers {
    shared: Arc<Shared>,
    tokens: Vec<String>,
    names: Vec<String>,
}

impl Answers {
    pub(crate) fn new(shared: Arc<Shared>) -> Answers {
        Answers {
            shared,
            tokens: Vec::new(),
            names: Vec::new(),
        }
    }

    /// Serves `key_authorization` at `/.well-known/acme-challenge/<token>`.
    pub(crate) fn http01(&mut self, token: &str, key_authorization: &KeyAuthorization) {
        self.shared
            .http01
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.to_string(), key_authorization.as_str().to_string());
        self.tokens.push(token.to_string());
    }

    /// Offers `name`'s validation certificate to `acme-tls/1` handshakes.
    pub(crate) fn tls_alpn01(
        &mut self,
        name: &str,
        key_authorization: &KeyAuthorization,
    ) -> Result<(), String> {
        let key = validation_certificate(&self.shared, name, key_authorization)
            .map_err(|e| format!("cannot make the tls-alpn-01 certificate for {name}: {e}"))?;
        self.shared.store.set_challenge(name, Some(Arc::new(key)));
        self.names.push(name.to_string());
        Ok(())
    }
}

impl Drop for Answers {
    fn drop(&mut self) {
        let mut http01 = self
            .shared
            .http01
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for token in &self.tokens {
            http01.remove(token);
        }
        for name in &self.names {
            self.shared.store.set_challenge(name, None);
        }
    }
}

/// A self-signed certificate for `name` with the `acmeIdentifier`
/// extension holding the SHA-256 of the key authorization (RFC 8737 §3).
fn validation_certificate(
    shared: &Shared,
    name: &str,
    key_authorization: &KeyAuthorization,
) -> Result<CertifiedKey, String> {
    let mut params =
        rcgen::CertificateParams::new(vec![name.to_string()]).map_err(|e| e.to_string())?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(
        key_authorization.digest().as_ref(),
    )];
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signer = shared
        .provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| e.to_string())?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signer))
}
