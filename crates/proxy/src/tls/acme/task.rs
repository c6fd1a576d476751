//! The loop of one ACME configuration: serve the kept certificate if it
//! is still good, order when due (at once without one, at renewal time,
//! after backoff following a failure, or when asked), and report.

use std::time::{Duration, SystemTime};

use super::super::files::served_from_pem;
use super::super::store::Served;
use super::{Job, SOURCE, order, schedule, storage};

/// The longest single sleep, so a clock that jumps is noticed.
const NAP: Duration = Duration::from_secs(3600);
/// How long one order may take before it counts as failed.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);

pub(crate) async fn run(job: Job) {
    let provider = job.shared.provider.clone();
    let mut current = storage::load_certificate(&provider, &job.dir, &job.settings.domains);
    if let Some(served) = &current {
        tracing::info!(
            names = ?served.names,
            not_after = %humantime::format_rfc3339_seconds(served.not_after),
            "ACME: serving the kept certificate"
        );
        job.shared.store.set(SOURCE, served.clone());
    }
    let mut failures = 0u32;
    let mut failed_at = SystemTime::now();
    loop {
        let validity = current.as_ref().map(|s| (s.not_before, s.not_after));
        let base = job.retry_base();
        let due = schedule::next_due(SystemTime::now(), validity, failures, failed_at, base);
        job.report(|s| s.next_attempt = Some(due));
        if !wait(&job, due).await {
            return;
        }
        job.report(|s| s.next_attempt = None);
        let outcome = tokio::select! {
            () = job.stop.cancelled() => return,
            outcome = tokio::time::timeout(ATTEMPT_TIMEOUT, attempt(&job)) => outcome
                .unwrap_or_else(|_| Err(format!("no answer from the CA in {}s", ATTEMPT_TIMEOUT.as_secs()))),
        };
        match outcome {
            Ok(served) => {
                failures = 0;
                job.report(|s| {
                    s.failures = 0;
                    s.last_error = None;
                });
                current = Some(served);
            }
            Err(message) => {
                failures = failures.saturating_add(1);
                failed_at = SystemTime::now();
                failed(&job, &message, failures, current.as_ref());
            }
        }
    }
}

/// Until `due`, or until asked to order now; false when stopped.
async fn wait(job: &Job, due: SystemTime) -> bool {
    loop {
        let left = due
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        if left.is_zero() {
            return !job.stop.is_cancelled();
        }
        tokio::select! {
            () = job.stop.cancelled() => return false,
            () = job.wake.notified() => return true,
            () = tokio::time::sleep(left.min(NAP)) => {}
        }
    }
}

/// One order; the certificate is kept and served once it checks out.
async fn attempt(job: &Job) -> Result<Served, String> {
    let domains = &job.settings.domains;
    tracing::info!(?domains, directory = %job.settings.directory, "ACME: ordering a certificate");
    let (chain, key) = order::obtain(job).await?;
    let served = served_from_pem(
        &job.shared.provider,
        chain.as_bytes(),
        key.as_bytes(),
        "the CA's certificate",
        "its key",
    )?;
    if let Err(message) = storage::save_certificate(&job.dir, domains, &chain, &key) {
        tracing::warn!("ACME: {message}; the certificate is served but not kept");
    }
    job.shared.store.set(SOURCE, served.clone());
    tracing::info!(
        names = ?served.names,
        not_after = %humantime::format_rfc3339_seconds(served.not_after),
        renew_at = %humantime::format_rfc3339_seconds(schedule::renew_at(served.not_before, served.not_after)),
        "ACME: certificate obtained"
    );
    Ok(served)
}

fn failed(job: &Job, message: &str, failures: u32, current: Option<&Served>) {
    let retry_in = schedule::backoff(job.retry_base(), failures);
    let serving = match current {
        Some(served) if served.not_after > SystemTime::now() => {
            "the certificate it had keeps serving"
        }
        _ => "no certificate is served for these names yet",
    };
    tracing::warn!(
        domains = ?job.settings.domains,
        directory = %job.settings.directory,
        failures,
        retry_in = %humantime::format_duration(retry_in),
        "ACME: ordering the certificate failed: {message}; {serving}"
    );
    job.report(|s| {
        s.failures = failures;
        s.last_error = Some(message.to_string());
    });
}
