//! berth's integration tests: the real binary against real files, processes
//! and sockets. One test binary (ripgrep's layout); each area in a module.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backup;
mod browser;
mod support;

mod cgroups;
mod config;
mod confine;
mod control;
mod dashboard;
mod deploy;
mod docker;
mod docker_demo;
mod docker_deploy;
mod docker_exec;
mod docker_networks;
mod docker_udp;
mod export;
mod faults;
mod identity;
mod logs;
mod metrics;
mod postgres;
mod proxy;
mod reconfigure;
mod reference;
mod tls;
mod up;
