//! berth-compose: Compose files to one validated, normalized [`Project`].
//!
//! Everything else in berth consumes the `Project` this crate produces; no
//! other crate sees YAML or the raw shapes of the file.
//!
//! # Layout
//! - `diag`: spans, diagnostics and their rendering.
//! - `yaml`: YAML text -> a tree of nodes that remember their place; serde
//!   binding of that tree.
//! - `interpolate`, `dotenv`: `${VAR}` substitution and `.env` files.
//! - `schema`: validation against the Compose Specification's JSON schema.

pub mod diag;
pub mod dotenv;
pub mod interpolate;
mod schema;
pub mod yaml;

#[cfg(test)]
mod testsupport;
