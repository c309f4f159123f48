//! herald-cesql
