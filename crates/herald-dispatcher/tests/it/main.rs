//! Integration tests of the dispatcher against a real nats-server: ownership of subscriptions
//! across replicas (membership leases, claims, fences, hand-over and failover).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    reason = "a test fails by panicking"
)]

mod ownership;
