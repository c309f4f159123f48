//! Integration tests of herald-cesql, in one test binary: the CloudEvents
//! SQL conformance suite (TCK), property tests that the parser and evaluator
//! never panic, and checks of the public API. Only the TCK runner does I/O:
//! it reads the suite's YAML files from `tests/cesql-tck` in this crate.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    reason = "a test fails by panicking"
)]

mod api;
mod properties;
mod tck;
