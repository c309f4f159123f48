//! Integration tests of the control service: a real nats-server per test, the service on a
//! loopback port-0 listener, and the generated gRPC client.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    reason = "a test fails by panicking"
)]

mod support;

mod auth;
mod deliveries;
mod discovery;
mod secrets;
mod subscriptions;
mod tenants;
