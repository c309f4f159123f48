//! herald-dispatcher
