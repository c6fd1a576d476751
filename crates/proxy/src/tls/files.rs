//! PEM certificate chains and keys to [`Served`] certificates, with what
//! is wrong said plainly: an unreadable file, no certificate or key in it,
//! a key of a kind berth cannot sign with, a key that is not the
//! certificate's.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;

use super::store::Served;

/// A chain and its key from PEM text; `cert_name`/`key_name` name them in errors.
pub(crate) fn served_from_pem(
    provider: &CryptoProvider,
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_name: &str,
    key_name: &str,
) -> Result<Served, String> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{cert_name}: not a PEM certificate chain ({e})"))?;
    let Some(leaf) = chain.first() else {
        return Err(format!(
            "{cert_name} holds no certificate (-----BEGIN CERTIFICATE----- block)"
        ));
    };
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("{key_name} holds no PEM private key (PKCS#8, RSA or EC) ({e})"))?;
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("{key_name}: the key cannot sign ({e})"))?;
    let (names, not_before, not_after) = describe(leaf)
        .map_err(|e| format!("{cert_name}: the first certificate does not parse ({e})"))?;
    let key = CertifiedKey::new(chain, signer);
    key.keys_match().map_err(|_| {
        format!("{key_name} is not the private key of the certificate in {cert_name}")
    })?;
    Ok(Served {
        key: Arc::new(key),
        names,
        not_before,
        not_after,
    })
}

/// A `certificates` entry's files, read and checked.
pub(crate) fn load_pair(
    provider: &CryptoProvider,
    cert: &Path,
    key: &Path,
) -> Result<Served, String> {
    let read = |path: &Path, what: &str| {
        std::fs::read(path).map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
    };
    let cert_pem = read(cert, "certificate")?;
    let key_pem = read(key, "private key")?;
    served_from_pem(
        provider,
        &cert_pem,
        &key_pem,
        &cert.display().to_string(),
        &key.display().to_string(),
    )
}

/// The names (SAN DNS names and addresses; the subject's CN when there is
/// no SAN) and validity (not before, not after) of a certificate.
pub(crate) fn describe(
    der: &CertificateDer<'_>,
) -> Result<(Vec<String>, SystemTime, SystemTime), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) => names.push(n.to_ascii_lowercase()),
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_of(bytes) {
                        names.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_ascii_lowercase),
        );
    }
    let time = |t: i64| UNIX_EPOCH + Duration::from_secs(u64::try_from(t).unwrap_or(0));
    let validity = cert.validity();
    Ok((
        names,
        time(validity.not_before.timestamp()),
        time(validity.not_after.timestamp()),
    ))
}

fn ip_of(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        _ => None,
    }
}

/// What a file looks like now, to notice it changed (replaced by a rename,
/// rewritten in place, or touched).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamp(Option<(SystemTime, u64, u64)>);

impl Stamp {
    pub(crate) fn of(path: &Path) -> Stamp {
        let meta = std::fs::metadata(path).ok();
        Stamp(meta.map(|m| {
            #[cfg(unix)]
            let ino = std::os::unix::fs::MetadataExt::ino(&m);
            #[cfg(not(unix))]
            let ino = 0;
            (m.modified().unwrap_or(UNIX_EPOCH), m.len(), ino)
        }))
    }
}
