//! herald-signing
