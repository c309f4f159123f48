//! herald-ingest
