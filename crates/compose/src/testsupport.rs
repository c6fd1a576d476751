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
