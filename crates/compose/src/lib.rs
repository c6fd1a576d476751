//! berth-compose: Compose files to one validated, normalized [`Project`].
//!
//! Everything else in berth consumes the `Project` this crate produces; no
//! other crate sees YAML or the raw shapes of the file. [`load`] collects
//! every error before failing and returns warnings separately.
//!
//! # Layout
//! - `diag`: spans, diagnostics and their rendering.
//! - `yaml`: YAML text -> a tree of nodes that remember their place; serde
//!   binding of that tree.
//! - `interpolate`, `dotenv`: `${VAR}` substitution and `.env` files.
//! - `ports`, `volumes`, `units`: short syntaxes, durations, byte sizes.
//! - `schema`: validation against the Compose Specification's JSON schema.
//! - `loader`: discovery, environment, per-file passes, `include`,
//!   `extends`, merging.
//! - `normalize`: the merged tree to the [`Project`] model, project-wide checks.
//! - `model`, `xberth`, `edge`: the normalized model and berth's own
//!   settings (`edge`: TLS and route policies of the proxy).
//! - `render`: the model as `berth config` prints it.

mod backup;
mod confine;
mod context;
mod dashboard;
pub mod diag;
pub mod diff;
pub mod dotenv;
mod edge;
pub mod interpolate;
mod loader;
pub mod model;
mod normalize;
mod options;
pub mod ports;
pub mod render;
mod schema;
pub mod units;
mod values;
pub mod volumes;
pub mod xberth;
pub mod yaml;

pub use diag::{Diagnostic, DiagnosticKind, Diagnostics, Severity, SourceMap, Span};
pub use loader::{DEFAULT_FILES, LoadOptions, Loaded, load, normalize_project_name};
pub use model::*;

#[cfg(test)]
mod conformance_tests;
#[cfg(test)]
mod robustness_tests;
#[cfg(test)]
mod testsupport;
