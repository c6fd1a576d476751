//! `self_signed: true`: a development certificate for `localhost`,
//! `127.0.0.1` and `::1`, made once and kept under the state directory
//! (`tls/self-signed.pem` and `.key`, mode 0600) so a browser's exception
//! outlives a restart. Remade when it has less than 30 days left.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;

use super::files::load_pair;
use super::store::Served;

/// The names the development certificate covers.
pub(crate) const NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Valid for a year, like a public certificate may be at most.
const LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Where it is kept.
pub(crate) fn paths(state_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = state_dir.join("tls");
    (dir.join("self-signed.pem"), dir.join("self-signed.key"))
}

/// The kept certificate, or a new one (written before it is served).
pub(crate) fn load_or_make(provider: &CryptoProvider, state_dir: &Path) -> Result<Served, String> {
    let (cert, key) = paths(state_dir);
    if let Ok(served) = load_pair(provider, &cert, &key)
        && served
            .not_after
            .duration_since(SystemTime::now())
            .is_ok_and(|left| left > RENEW_BEFORE)
    {
        return Ok(served);
    }
    let (cert_pem, key_pem) = make(SystemTime::now())?;
    super::write_private(&cert, cert_pem.as_bytes())?;
    super::write_private(&key, key_pem.as_bytes())?;
    load_pair(provider, &cert, &key)
}

/// A new self-signed certificate and its key (ECDSA P-256), as PEM.
pub(crate) fn make(now: SystemTime) -> Result<(String, String), String> {
    let names: Vec<String> = NAMES.iter().map(|n| (*n).to_string()).collect();
    let mut params = rcgen::CertificateParams::new(names).map_err(|e| e.to_string())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "berth development certificate");
    // An hour back for clocks that disagree a little.
    params.not_before = time::OffsetDateTime::from(now - Duration::from_secs(3600));
    params.not_after = time::OffsetDateTime::from(now + LIFETIME);
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    Ok((cert.pem(), key.serialize_pem()))
}
