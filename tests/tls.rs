//! The TLS edge inside `berth up`: the native-quickstart stack behind a
//! TLS listener with the development certificate, in a real browser; and
//! the TLS profile graded by sslyze against Mozilla's "intermediate"
//! configuration.

use std::time::Duration;

use crate::browser::Browser;
use crate::support::{Test, http_get, proxy_addr, proxy_tls_addr, shared_dir};

const SEC: Duration = Duration::from_secs(1);

/// native-quickstart with a plain listener that redirects and a TLS one
/// on the development certificate, on ports berth picks.
fn quickstart_over_tls() -> Test {
    let t = Test::new();
    crate::up::copy_dir(&shared_dir().join("stacks/native-quickstart"), t.dir());
    t.file(
        "compose.override.yaml",
        "services:\n  api:\n    expose: !reset []\n    ports: [\"127.0.0.1::8000\"]\nx-berth:\n  proxy:\n    listen: !override [\"127.0.0.1:0\"]\n    listen_tls: [\"127.0.0.1:0\"]\n    tls: {self_signed: true}\n    redirect_http: true\n",
    )
}

#[test]
fn native_quickstart_loads_over_https_in_a_real_browser() {
    let mut up = quickstart_over_tls().arg("up").spawn();
    up.wait_for("stack is up", 30 * SEC);
    let (plain, tls) = (proxy_addr(&up.test), proxy_tls_addr(&up.test));
    let port = tls.rsplit(':').next().unwrap();
    // The plain listener sends browsers to https.
    let (status, _) = http_get(&plain, "/items").unwrap();
    assert_eq!(status, 308);
    // The development certificate is in the state directory.
    let cert = up.test.dir().join(".berth/tls/self-signed.pem");
    assert!(cert.exists(), "{}", cert.display());
    let browser = Browser::start();
    browser.goto(&format!("https://localhost:{port}/"));
    browser.wait_for("location.protocol === 'https:'", 10 * SEC);
    browser.wait_for(
        "window._env_ && window._env_.API_BASE_URL === '/api'",
        10 * SEC,
    );
    let served = browser.wait_for(
        "/served by replica/.test(document.getElementById('served-by').textContent) && document.getElementById('served-by').textContent",
        10 * SEC,
    );
    assert!(served.as_str().unwrap().contains("replica"), "{served}");
    // Adding an item: a POST over HTTPS (HTTP/2) through the proxy.
    browser.js(
        "const f = document.getElementById('add'); f.querySelector('input').value = 'over https'; f.requestSubmit(); return true;",
    );
    browser.wait_for(
        "[...document.querySelectorAll('#items li')].some(li => li.textContent === 'over https')",
        10 * SEC,
    );
    let protocol =
        browser.js("return performance.getEntriesByType('navigation')[0].nextHopProtocol;");
    assert_eq!(protocol, "h2", "the page came over HTTP/2");
    drop(browser);
    assert_eq!(up.interrupt(), Some(130));
}

#[test]
fn sslyze_grades_the_tls_listener_mozilla_intermediate() {
    let t = quickstart_over_tls();
    let _stack = t.up_detached();
    let tls = proxy_tls_addr(&t);
    let out = std::process::Command::new("sslyze")
        .args(["--mozilla_config=intermediate", &tls])
        .output()
        .expect("sslyze is required (pip install sslyze; .ci/run installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let (_, verdict) = text
        .split_once("COMPLIANCE AGAINST TLS CONFIGURATION")
        .unwrap_or_else(|| panic!("sslyze did not grade the listener:\n{text}"));
    // Every finding is a "* check: reason" line; the development
    // certificate is not publicly trusted, so path validation must fail,
    // and nothing else may.
    let findings: Vec<&str> = verdict
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("* "))
        .collect();
    assert!(
        !findings.is_empty(),
        "no finding at all, not even the certificate's:\n{text}"
    );
    assert!(
        findings
            .iter()
            .all(|f| f.starts_with("* certificate_path_validation:")),
        "{findings:#?}\n{text}"
    );
    // The scan did see the protocol versions it grades.
    assert!(text.contains("TLS 1.3 Cipher Suites:"), "{text}");
}

/// `curl` over https, trusting `ca`: (status, HTTP version, body).
fn curl_https(url: &str, ca: &std::path::Path) -> (String, String, String) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(ca)
        .args(["-w", "\n%{http_code} %{http_version}", url])
        .output()
        .expect("curl is required (.ci/run installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = text.rsplit_once('\n').unwrap_or(("", &text));
    let (status, version) = tail.split_once(' ').unwrap_or((tail, ""));
    (status.to_string(), version.to_string(), body.to_string())
}

#[test]
fn a_deploy_adds_a_tls_listener_to_the_running_stack() {
    let t = Test::new();
    crate::up::copy_dir(&shared_dir().join("stacks/native-quickstart"), t.dir());
    let plain = "services:\n  api:\n    expose: !reset []\n    ports: [\"127.0.0.1::8000\"]\nx-berth:\n  proxy:\n    listen: !override [\"127.0.0.1:0\"]\n";
    let t = t.file("compose.override.yaml", plain);
    let _stack = t.up_detached();
    let before = proxy_addr(&t);
    let with_tls =
        format!("{plain}    listen_tls: [\"127.0.0.1:0\"]\n    tls: {{self_signed: true}}\n");
    std::fs::write(t.dir().join("compose.override.yaml"), with_tls).unwrap();
    t.run_args(["up", "--dry-run"])
        .success()
        .stdout_has("proxy: listen_tls, tls changed (applied live)");
    t.run_args(["up"])
        .success()
        .stdout_has(", https://127.0.0.1:");
    let tls = proxy_tls_addr(&t);
    let ca = t.dir().join(".berth/tls/self-signed.pem");
    let port = tls.rsplit(':').next().unwrap();
    let (status, version, body) = curl_https(&format!("https://localhost:{port}/api/whoami"), &ca);
    assert_eq!((status.as_str(), version.as_str()), ("200", "2"), "{body}");
    assert!(body.contains("replica"), "{body}");
    // The plain listener was kept as it was.
    assert_eq!(proxy_addr(&t), before);
    assert_eq!(http_get(&before, "/api/whoami").unwrap().0, 200);
}

/// A self-signed P-256 certificate for `name` as `<stem>.pem` and `.key`.
fn openssl_cert(t: &Test, stem: &str, name: &str) {
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
        ])
        .args([
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            &format!("subjectAltName=DNS:{name}"),
        ])
        .args([
            "-keyout",
            &format!("{stem}.key"),
            "-out",
            &format!("{stem}.pem"),
        ])
        .current_dir(t.dir())
        .output()
        .expect("openssl is required (.ci/run installs it)");
    assert!(status.status.success(), "{status:?}");
}

#[test]
fn config_names_the_entry_of_a_certificate_that_cannot_be_served() {
    let t = Test::new().compose(
        "services:\n  web:\n    command: [sleep, \"60\"]\nx-berth:\n  proxy:\n    listen_tls: [\"127.0.0.1:0\"]\n    tls:\n      certificates:\n        - {cert: a.pem, key: a.key}\n        - {cert: b.pem, key: a.key}\n        - {cert: c.pem, key: c.key}\n",
    );
    openssl_cert(&t, "a", "a.test");
    openssl_cert(&t, "b", "b.test");
    std::fs::write(t.dir().join("c.pem"), "not a certificate\n").unwrap();
    // What the file shows: a missing key, a file with no PEM certificate.
    t.run_args(["config", "-q"])
        .code(2)
        .stderr_has("compose.yaml:11")
        .stderr_has("c.pem holds no PEM certificate")
        .stderr_has("cannot read the private key");
    // What only reading the keys shows: b's certificate with a's key.
    std::fs::write(
        t.dir().join("c.pem"),
        std::fs::read(t.dir().join("a.pem")).unwrap(),
    )
    .unwrap();
    std::fs::copy(t.dir().join("a.key"), t.dir().join("c.key")).unwrap();
    t.run_args(["config", "-q"])
        .code(2)
        .stderr_has("compose.yaml:10: ")
        .stderr_has("a.key is not the private key of the certificate in");
    std::fs::write(
        t.dir().join("compose.yaml"),
        std::fs::read_to_string(t.dir().join("compose.yaml"))
            .unwrap()
            .replace("{cert: b.pem, key: a.key}", "{cert: b.pem, key: b.key}"),
    )
    .unwrap();
    t.run_args(["config", "-q"]).success();
}

#[test]
fn certificate_reloads_and_their_failures_are_in_the_log_stream() {
    let t = Test::new().compose(
        "services:\n  web:\n    command: [sleep, \"600\"]\nx-berth:\n  proxy:\n    listen_tls: [\"127.0.0.1:0\"]\n    tls:\n      certificates:\n        - {cert: site.pem, key: site.key}\n",
    );
    openssl_cert(&t, "site", "site.test");
    openssl_cert(&t, "other", "other.test");
    let _stack = t.up_detached();
    // A key that is not the certificate's: reported, the old pair keeps serving.
    std::fs::copy(t.dir().join("other.key"), t.dir().join("site.key")).unwrap();
    let logged = |needle: &str| {
        crate::support::eventually(10 * SEC, || t.run_args(["logs"]).stdout().contains(needle))
    };
    assert!(
        logged("proxy error: ") && logged("compose.yaml:9: "),
        "{}",
        t.run_args(["logs"]).stdout()
    );
    assert!(logged("is not the private key of the certificate in"));
    assert!(logged("the certificate loaded before keeps serving"));
    // The matching certificate next to it: loaded, and said so.
    std::fs::copy(t.dir().join("other.pem"), t.dir().join("site.pem")).unwrap();
    assert!(
        logged("certificate reloaded"),
        "{}",
        t.run_args(["logs"]).stdout()
    );
}
