//! Process-level tests of the `herald` binary: each role as its own process against a real
//! nats-server, killed and signalled as an orchestrator would.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    reason = "a test fails by panicking"
)]

mod crash;
mod drain;
mod migrate;
mod nats_auth;
mod nats_cluster;
mod nats_tls;
mod network_allow;
mod process;
mod replay_stop;
mod replicas;
mod shutdown;
mod startup;
mod subscription_metrics;
mod tls;
mod tracing;
