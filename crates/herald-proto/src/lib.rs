//! herald-proto
