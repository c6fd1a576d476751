//! Nothing panics on input: random and mutated YAML through the whole loader.

use proptest::prelude::*;

use crate::LoadOptions;
use crate::testsupport::conformance_dir;

fn load_text(text: &str) {
    let mut opts = LoadOptions::new("/nonexistent-berth-fuzz", Default::default());
    opts.files = vec!["-".into()];
    opts.stdin = Some(text.to_string());
    // Either outcome is fine; a panic fails the test.
    let _ = crate::load(&opts);
}

/// Real compose files, to mutate.
fn seeds() -> Vec<String> {
    let mut out = Vec::new();
    for dir in ["awesome-compose", "invalid", "normalize"] {
        let Ok(entries) = std::fs::read_dir(conformance_dir().join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "yaml" || x == "yml")
                && let Ok(t) = std::fs::read_to_string(&p)
                && t.len() < 20_000
            {
                out.push(t);
            }
        }
    }
    out.sort();
    out
}

/// YAML-ish fragments that reach deep into the loader.
fn token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "services:",
        "\n",
        "  ",
        "    ",
        "- ",
        ": ",
        "web",
        "image: x",
        "ports:",
        "\"80:80\"",
        "volumes:",
        "./a:/b:ro",
        "depends_on:",
        "condition: service_healthy",
        "healthcheck:",
        "test: [CMD, true]",
        "interval: 1s",
        "environment:",
        "A=${B:-c}",
        "${",
        "}",
        "$$",
        "&a",
        "*a",
        "<<: *a",
        "!reset",
        "!override",
        "[",
        "]",
        "{",
        "}",
        ",",
        "'",
        "\"",
        "#",
        "extends:",
        "service: web",
        "include:",
        "- other.yaml",
        "x-berth:",
        "proxy:",
        "routes:",
        "path: /api",
        "ready:",
        "http: /h",
        "profiles: [p]",
        "networks:",
        "deploy:",
        "replicas: 3",
        "null",
        "~",
        "0x1F",
        "1e9",
        "-1",
        "\t",
        "version: '3'",
        "name: N",
        "env_file: missing.env",
        "command: \"a 'b\"",
        "expose: ['1-2']",
        "restart: on-failure:3",
        "ulimits: {nofile: 1}",
    ])
}

proptest! {
    // PROPTEST_CASES raises the count for a longer local run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(400),
        .. ProptestConfig::default()
    })]

    #[test]
    fn random_token_soup_never_panics(tokens in prop::collection::vec(token(), 0..80)) {
        load_text(&tokens.concat());
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        load_text(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn mutated_real_files_never_panic() {
    let seeds = seeds();
    assert!(seeds.len() >= 60, "only {} seed files", seeds.len());
    let mut rng = crate::testsupport::Rng::new(0x9E37_79B9_7F4A_7C15);
    let mut next = || rng.next();
    let inserts: [&str; 12] = [
        "\n", ":", "- ", "{", "[", "\"", "$", "*a", "&a ", "\t", "!reset ", "  ",
    ];
    let rounds: usize = std::env::var("BERTH_FUZZ_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1500);
    for round in 0..rounds {
        let seed = &seeds[(next() as usize) % seeds.len()];
        let mut text: Vec<u8> = seed.as_bytes().to_vec();
        for _ in 0..1 + next() % 4 {
            if text.is_empty() {
                break;
            }
            let at = (next() as usize) % text.len();
            match next() % 3 {
                0 => {
                    text.remove(at);
                }
                1 => {
                    let ins = inserts[(next() as usize) % inserts.len()];
                    text.splice(at..at, ins.bytes());
                }
                _ => {
                    let end = (at + 1 + (next() as usize) % 40).min(text.len());
                    let chunk: Vec<u8> = text[at..end].to_vec();
                    let to = (next() as usize) % text.len();
                    text.splice(to..to, chunk);
                }
            }
        }
        let t = String::from_utf8_lossy(&text).into_owned();
        let result = std::panic::catch_unwind(|| load_text(&t));
        assert!(
            result.is_ok(),
            "round {round}: the loader panicked on:\n{t}"
        );
    }
}
