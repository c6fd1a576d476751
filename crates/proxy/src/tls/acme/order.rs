//! One order (RFC 8555 §7.4): the account (kept, or created and kept),
//! the challenges answered, the CSR for a new key, the certificate chain.
//! Failures are told with the CA's problem document when it sent one.

use std::time::Duration;

use berth_compose::xberth::AcmeChallenge;
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, Order,
    OrderStatus, Problem, RetryPolicy,
};

use super::challenge::Answers;
use super::{Job, client, storage};

/// The problem type of an account the CA does not know (any more).
const NO_ACCOUNT: &str = "urn:ietf:params:acme:error:accountDoesNotExist";

/// How long the CA may take to validate, then to issue.
fn patience() -> RetryPolicy {
    RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .timeout(Duration::from_secs(120))
}

/// A certificate chain (PEM) for the job's domains and its new key (PEM).
pub(crate) async fn obtain(job: &Job) -> Result<(String, String), String> {
    let account = account(job).await?;
    let identifiers: Vec<Identifier> = job
        .settings
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = match account.new_order(&NewOrder::new(&identifiers)).await {
        Ok(order) => order,
        Err(instant_acme::Error::Api(problem)) if problem.r#type.as_deref() == Some(NO_ACCOUNT) => {
            // Made again at the next attempt.
            let _ = std::fs::remove_file(job.dir.join("account.json"));
            return Err(format!("new order: {}", said(&problem)));
        }
        Err(e) => return Err(ca("new order")(e)),
    };
    job.report(|s| s.orders += 1);
    let answers = answer_all(job, &mut order).await?;
    let status = order
        .poll_ready(&patience())
        .await
        .map_err(ca("validation"))?;
    if status != OrderStatus::Ready {
        return Err(why_invalid(&mut order).await);
    }
    drop(answers);
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params =
        rcgen::CertificateParams::new(job.settings.domains.clone()).map_err(|e| e.to_string())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key).map_err(|e| e.to_string())?;
    order
        .finalize_csr(csr.der())
        .await
        .map_err(ca("finalizing"))?;
    let chain = order
        .poll_certificate(&patience())
        .await
        .map_err(ca("fetching the certificate"))?;
    Ok((chain, key.serialize_pem()))
}

/// The kept account, or a new one (kept).
async fn account(job: &Job) -> Result<Account, String> {
    let http = || client::http_client(&job.shared.provider, job.settings.ca_root.as_deref());
    if let Some(credentials) = storage::load_account(&job.dir)? {
        return Account::builder_with_http(http()?)
            .from_credentials(credentials)
            .await
            .map_err(ca("reaching the CA"));
    }
    let contact = job.settings.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let new = NewAccount {
        contact: &contacts,
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    let (account, credentials) = Account::builder_with_http(http()?)
        .create(&new, job.settings.directory.clone(), None)
        .await
        .map_err(ca("creating the account"))?;
    storage::save_account(&job.dir, &credentials)?;
    tracing::info!(directory = %job.settings.directory, "ACME: account created");
    Ok(account)
}

/// Puts up the answer to each pending authorization's challenge and tells
/// the CA to check it.
async fn answer_all(job: &Job, order: &mut Order) -> Result<Answers, String> {
    let (kind, via) = match job.settings.challenge {
        AcmeChallenge::Http01 => (ChallengeType::Http01, "http-01"),
        AcmeChallenge::TlsAlpn01 => (ChallengeType::TlsAlpn01, "tls-alpn-01"),
    };
    let mut answers = Answers::new(job.shared.clone());
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization.map_err(ca("authorization"))?;
        match authorization.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => {
                let name = authorization.identifier().to_string();
                return Err(format!("the authorization for {name} is {other:?}"));
            }
        }
        let name = authorization.identifier().to_string();
        let Some(mut challenge) = authorization.challenge(kind.clone()) else {
            return Err(format!("the CA offers no {via} challenge for {name}"));
        };
        let key_authorization = challenge.key_authorization();
        match job.settings.challenge {
            AcmeChallenge::Http01 => answers.http01(&challenge.token, &key_authorization),
            AcmeChallenge::TlsAlpn01 => answers.tls_alpn01(&name, &key_authorization)?,
        }
        challenge.set_ready().await.map_err(ca("challenge"))?;
    }
    Ok(answers)
}

/// What the CA said about the failed authorizations of an invalid order.
async fn why_invalid(order: &mut Order) -> String {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authorization)) = authorizations.next().await {
        let Ok(state) = authorization.refresh().await else {
            continue;
        };
        let name = state.identifier().to_string();
        for challenge in &state.challenges {
            if let Some(problem) = &challenge.error {
                reasons.push(format!("{name}: {}", said(problem)));
            }
        }
    }
    if reasons.is_empty() {
        "the order is invalid (the CA gave no reason)".into()
    } else {
        format!("validation failed: {}", reasons.join("; "))
    }
}

/// An error of `step`, with the CA's problem document when there is one,
/// else with its causes (`client error (Connect): ... Connection refused`).
fn ca(step: &'static str) -> impl Fn(instant_acme::Error) -> String {
    move |e| match e {
        instant_acme::Error::Api(problem) => format!("{step}: {}", said(&problem)),
        other => {
            let mut text = format!("{step}: {other}");
            let mut cause = std::error::Error::source(&other);
            while let Some(e) = cause {
                text.push_str(&format!(": {e}"));
                cause = e.source();
            }
            text
        }
    }
}

/// A problem document in one line: detail, type, subproblems.
fn said(problem: &Problem) -> String {
    let mut text = problem.detail.clone().unwrap_or_else(|| "no detail".into());
    if let Some(kind) = &problem.r#type {
        text.push_str(&format!(" ({kind})"));
    }
    for sub in &problem.subproblems {
        text.push_str(&format!("; {sub}"));
    }
    text
}
