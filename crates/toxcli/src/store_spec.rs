//! `--store`: which backend to use. The naming and opening live in
//! [`toxstore::spec`], shared with `cargo xtask migrate`; this module adds
//! the command line's view of errors (a bad store is a usage error).

use std::sync::Arc;

use toxstore::Store;
use toxstore::spec::{CREDENTIALS_VAR, DATASET_VAR};
pub use toxstore::spec::{OpenOptions, StoreSpec};

use crate::exit::UsageError;

/// Everything needed to open a store, resolved from flags and environment.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Which store.
    pub spec: StoreSpec,
    /// How to reach BigQuery: `--bigquery-endpoint`, the credentials.
    pub options: OpenOptions,
}

impl StoreSettings {
    /// Resolves the store from `--store` / `TOXSCORE_STORE` (`store`, both
    /// through clap), then `BIGQUERY_DATASET_NAME`, then the default.
    pub fn resolve(store: Option<StoreSpec>, bigquery_endpoint: Option<String>) -> anyhow::Result<StoreSettings> {
        let dataset_name = std::env::var(DATASET_VAR).ok();
        let spec = StoreSpec::resolve(store, dataset_name.as_deref()).map_err(|error| UsageError(error.0))?;
        let credentials = std::env::var_os(CREDENTIALS_VAR).map(std::path::PathBuf::from);
        Ok(StoreSettings { spec, options: OpenOptions::new(bigquery_endpoint, credentials) })
    }

    /// Opens the store. Nothing is created until a command writes.
    pub async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        self.spec.open(&self.options).await.map_err(|error| match error {
            toxstore::Error::InvalidInput { what } => UsageError(what).into(),
            other => anyhow::Error::new(other).context(format!("opening {}", self.spec)),
        })
    }

    /// Whether the store forgets everything when this process ends.
    pub fn is_ephemeral(&self) -> bool {
        self.spec.is_ephemeral()
    }
}
