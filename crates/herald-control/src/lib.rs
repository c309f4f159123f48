//! herald-control
