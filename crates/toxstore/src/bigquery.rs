//! BigQuery backend (in progress).
