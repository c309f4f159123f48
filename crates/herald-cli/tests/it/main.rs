//! End-to-end tests of the `heraldctl` binary: subscription and delivery commands against an in-process
//! control service over a real nats-server, `sub test` with a dispatcher beside it, and `listen`
//! receiving a signed webhook.
//!
//! The control service and the dispatcher are dev-dependencies only; the binary itself links no
//! server crate.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    reason = "a test fails by panicking"
)]

mod access;
mod deliveries;
mod listen;
mod sub;
mod support;
mod test_send;
mod tls;
mod types;
