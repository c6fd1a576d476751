//! What each certificate in force is, for `berth ps` and the API: names,
//! source, expiry, and for ACME how ordering goes.

use std::time::{Duration, SystemTime};

use super::{ACME_SOURCE, AcmeStatus, TlsEdge};

/// One certificate source and what it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateStatus {
    /// `file`, `acme` or `self-signed`.
    pub source: String,
    /// The names it covers (for ACME before it has one: the names ordered).
    pub names: Vec<String>,
    /// When it expires; `None` while ACME has none yet.
    pub not_after: Option<SystemTime>,
    /// For `acme`: orders, failures, the last error, the next attempt.
    pub acme: Option<AcmeStatus>,
}

impl TlsEdge {
    /// Every certificate source, in rank order (files, ACME, self-signed);
    /// the ACME one is listed from the start, with or without a certificate.
    pub(crate) fn certificates(&self) -> Vec<CertificateStatus> {
        let acme = self.acme.status();
        let mut list: Vec<CertificateStatus> = self
            .store
            .list()
            .into_iter()
            .map(|(source, served)| CertificateStatus {
                acme: (source == ACME_SOURCE).then(|| acme.clone()).flatten(),
                source: kind(&source).to_string(),
                names: served.names,
                not_after: Some(served.not_after),
            })
            .collect();
        if let Some(status) = acme
            && !list.iter().any(|c| c.source == ACME_SOURCE)
        {
            list.push(CertificateStatus {
                source: ACME_SOURCE.to_string(),
                names: status.domains.clone(),
                not_after: None,
                acme: Some(status),
            });
        }
        list
    }

    /// Orders a new ACME certificate now, whatever its renewal time (no
    /// effect without `tls.acme`).
    pub(crate) fn renew_certificates(&self) {
        self.acme.renew_now();
    }

    /// The first delay before an ACME order is tried again (1 minute
    /// unless changed; it doubles up to an hour).
    pub(crate) fn set_acme_retry_base(&self, base: Duration) {
        self.acme.set_retry_base(base);
    }
}

fn kind(source: &str) -> &str {
    if source.starts_with("file:") {
        "file"
    } else {
        source
    }
}
