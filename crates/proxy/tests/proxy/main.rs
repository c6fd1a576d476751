//! Integration tests of berth-proxy: real sockets on 127.0.0.1 port 0, real
//! HTTP clients and servers, a fake engine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod acme;
mod balancing;
mod compression;
mod endpoints;
mod errors;
mod forwarding;
mod policy;
mod pooling;
mod retries;
mod routing;
mod safety;
mod shutdown;
mod static_files;
mod streaming;
mod tls;
mod websocket;
