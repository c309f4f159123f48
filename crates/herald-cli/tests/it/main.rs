//! End-to-end tests of the `heraldctl` binary: subscription and delivery commands against an in-process
//! control service over a real nats-server, and `listen` receiving a signed webhook.
//!
//! The control service is a dev-dependency only; the binary itself links no server crate.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    reason = "a test fails by panicking"
)]

mod deliveries;
mod listen;
mod sub;
mod support;
mod tls;
mod types;
