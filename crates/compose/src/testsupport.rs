//! Test helpers shared by the unit tests of this crate.

use std::path::{Path, PathBuf};

/// The conformance vectors in `shared/conformance` (see its README).
///
/// Looked up in `$BERTH_CONFORMANCE_DIR`, then beside the repository
/// (`<repo>/../shared/conformance`), then at `/work/shared/conformance`.
/// Missing vectors fail the test: a conformance test that cannot find its
/// data must not pass.
pub(crate) fn conformance_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BERTH_CONFORMANCE_DIR") {
        let dir = PathBuf::from(dir);
        return std::fs::canonicalize(&dir).unwrap_or(dir);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        manifest.join("../../../shared/conformance"),
        PathBuf::from("/work/shared/conformance"),
    ];
    for candidate in candidates {
        if candidate.is_dir() {
            return std::fs::canonicalize(&candidate).unwrap_or(candidate);
        }
    }
    panic!("conformance vectors not found; set BERTH_CONFORMANCE_DIR to shared/conformance")
}

/// Reads and parses one JSON file of the conformance vectors.
pub(crate) fn conformance_json(relative: &str) -> serde_json::Value {
    let path = conformance_dir().join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// Prints how many cases of a conformance list ran, and fails with every
/// failure listed.
pub(crate) fn report(list: &str, run: usize, failures: &[String]) {
    println!("{list}: {run} run, {} passed", run - failures.len());
    assert!(
        failures.is_empty(),
        "{list}: {} of {run} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A small deterministic generator (xorshift64) for the never-panics tests:
/// the same seed gives the same inputs on every run.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (not zero).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Up to `max_len - 1` pieces picked at random and joined.
    pub(crate) fn text(&mut self, pieces: &[&str], max_len: usize) -> String {
        let len = self.below(max_len);
        (0..len).map(|_| pieces[self.below(pieces.len())]).collect()
    }
}

/// The characters of `alphabet`, each as a piece for [`Rng::text`].
pub(crate) fn chars(alphabet: &str) -> Vec<&str> {
    alphabet
        .char_indices()
        .map(|(i, c)| &alphabet[i..i + c.len_utf8()])
        .collect()
}

/// Loads a Compose file given as text (as `-`, standard input), from `dir`.
pub(crate) fn load_text_in(
    dir: &std::path::Path,
    text: &str,
) -> Result<crate::Loaded, crate::Diagnostics> {
    let mut o = crate::LoadOptions::new(dir.to_path_buf(), Default::default());
    o.files = vec!["-".into()];
    o.stdin = Some(text.to_string());
    crate::load(&o)
}

/// [`load_text_in`] the temporary directory.
pub(crate) fn load_text(text: &str) -> Result<crate::Loaded, crate::Diagnostics> {
    load_text_in(&std::env::temp_dir(), text)
}

/// The errors loading `text` reports, as (line, message); panics when it loads.
pub(crate) fn load_errors(text: &str) -> Vec<(u32, String)> {
    load_text(text)
        .err()
        .unwrap_or_else(|| panic!("loaded: {text}"))
        .errors
        .iter()
        .map(|e| (e.span.line, e.message.clone()))
        .collect()
}
