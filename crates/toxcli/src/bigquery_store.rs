//! Opening the BigQuery store from the command line's settings.

use std::path::Path;
use std::sync::Arc;

use toxstore::Store;

use crate::exit::UsageError;

/// Opens `bigquery:[PROJECT.]DATASET`, at `endpoint` when given (the
/// emulator), with the service-account key file `credentials` when given.
pub async fn open(
    project: Option<&str>,
    dataset: &str,
    endpoint: Option<&str>,
    credentials: Option<&Path>,
) -> anyhow::Result<Arc<dyn Store>> {
    let _ = (project, dataset, endpoint, credentials);
    Err(UsageError("this build of toxcli has no BigQuery backend yet".to_owned()).into())
}
