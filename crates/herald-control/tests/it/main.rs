//! Integration tests of the control service: a real nats-server per test, the service on a
//! loopback port-0 listener, and the generated gRPC client.

mod support;

mod auth;
mod deliveries;
mod discovery;
mod subscriptions;
