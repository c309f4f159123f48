//! Process plumbing shared by every Herald role: logging and tracing, the admin listener
//! (health and metrics), shutdown signals, and a nats-server child process for dev mode and
//! tests.
//!
//! Nothing here knows about events or subscriptions (it uses only `herald-core`'s trace
//! context); role crates do not depend on each other but all may depend on this crate.

pub mod admin;
pub mod nats_server;
pub mod signal;
pub mod telemetry;
pub mod tls;
pub mod trace;

pub use admin::Health;
