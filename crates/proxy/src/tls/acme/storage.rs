//! What ACME keeps in the state directory, under `acme/<directory host>/`:
//! `account.json` (the account's key and URL) and `<first domain>.pem` /
//! `.key` (the certificate chain and its key), all mode 0600.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use instant_acme::AccountCredentials;
use rustls::crypto::CryptoProvider;

use super::super::files::served_from_pem;
use super::super::store::Served;
use super::super::write_private;

/// `<state>/acme/<host[_port] of the directory URL>`.
pub(crate) fn directory_dir(state_dir: &Path, directory: &str) -> PathBuf {
    let rest = directory.split_once("://").map_or(directory, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    state_dir
        .join("acme")
        .join(safe(&authority.replace(':', "_")))
}

/// A name usable as a file name: `*` and path separators replaced.
fn safe(name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' => c,
            _ => '_',
        })
        .collect();
    if name.is_empty() || name.starts_with('.') {
        format!("_{name}")
    } else {
        name
    }
}

/// The certificate chain and key files for `domains`.
pub(crate) fn certificate_paths(dir: &Path, domains: &[String]) -> (PathBuf, PathBuf) {
    let stem = safe(domains.first().map_or("certificate", String::as_str));
    (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    )
}

/// The kept certificate when it loads, covers every domain and has not
/// expired.
pub(crate) fn load_certificate(
    provider: &CryptoProvider,
    dir: &Path,
    domains: &[String],
) -> Option<Served> {
    let (cert, key) = certificate_paths(dir, domains);
    let cert_pem = std::fs::read(&cert).ok()?;
    let key_pem = std::fs::read(&key).ok()?;
    let served = match served_from_pem(
        provider,
        &cert_pem,
        &key_pem,
        &cert.display().to_string(),
        &key.display().to_string(),
    ) {
        Ok(served) => served,
        Err(message) => {
            tracing::warn!("ACME: the kept certificate does not load ({message}); ordering anew");
            return None;
        }
    };
    let covers = domains
        .iter()
        .all(|d| served.names.contains(&d.to_ascii_lowercase()));
    (covers && served.not_after > SystemTime::now()).then_some(served)
}

/// Keeps a new certificate (key first: a half-done save leaves a pair
/// that does not match, which is ordered anew).
pub(crate) fn save_certificate(
    dir: &Path,
    domains: &[String],
    chain_pem: &str,
    key_pem: &str,
) -> Result<(), String> {
    let (cert, key) = certificate_paths(dir, domains);
    write_private(&key, key_pem.as_bytes())?;
    write_private(&cert, chain_pem.as_bytes())
}

fn account_path(dir: &Path) -> PathBuf {
    dir.join("account.json")
}

/// The kept account, if any.
pub(crate) fn load_account(dir: &Path) -> Result<Option<AccountCredentials>, String> {
    let path = account_path(dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: not an ACME account ({e})", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

pub(crate) fn save_account(dir: &Path, credentials: &AccountCredentials) -> Result<(), String> {
    let json = serde_json::to_vec_pretty(credentials).map_err(|e| e.to_string())?;
    write_private(&account_path(dir), &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_named_after_the_directory_host_and_first_domain() {
        let state = Path::new("/state");
        let dir = directory_dir(state, "https://127.0.0.1:14000/dir");
        assert_eq!(dir, Path::new("/state/acme/127.0.0.1_14000"));
        assert_eq!(
            directory_dir(state, "https://acme-v02.api.letsencrypt.org/directory"),
            Path::new("/state/acme/acme-v02.api.letsencrypt.org")
        );
        let (cert, key) = certificate_paths(&dir, &["*.example.org".into(), "x".into()]);
        assert_eq!(cert, dir.join("_.example.org.pem"));
        assert_eq!(key, dir.join("_.example.org.key"));
        assert_eq!(safe("../x"), "_.._x");
    }
}
