//! herald-runtime
