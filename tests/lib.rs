//! Package `herald-e2e`: workspace end-to-end tests live in `e2e/`; this library is empty.
