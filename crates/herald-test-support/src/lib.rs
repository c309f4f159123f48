//! herald-test-support
