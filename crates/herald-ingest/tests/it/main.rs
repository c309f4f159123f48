//! Integration tests of the ingest service: a real nats-server per test, the service on a
//! loopback port-0 listener, and requests written byte for byte over TCP, so the tests see every
//! answer (and every dropped connection) as a producer does.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    reason = "a test fails by panicking"
)]

mod support;

mod corpus;
mod producer_keys;
mod refusals;
mod unavailable;
