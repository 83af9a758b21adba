//! Opening the BigQuery store from the command line's settings.

use std::path::Path;
use std::sync::Arc;

use toxstore::Store;
use toxstore::bigquery::{BigQuery, BigQueryConfig, Credentials};

/// Opens `bigquery:[PROJECT.]DATASET`.
///
/// Credentials: the service-account key file `credentials`
/// (`GOOGLE_APPLICATION_CREDENTIALS`) when given; else, with an `endpoint`
/// (an emulator, which ignores tokens), a constant token; else Google's
/// application default credentials.
pub async fn open(
    project: Option<&str>,
    dataset: &str,
    endpoint: Option<&str>,
    credentials: Option<&Path>,
) -> anyhow::Result<Arc<dyn Store>> {
    let credentials = match (credentials, endpoint) {
        (Some(key_file), _) => Credentials::ServiceAccountKeyFile(key_file.to_owned()),
        (None, Some(_)) => Credentials::StaticToken("emulator".to_owned()),
        (None, None) => Credentials::ApplicationDefault,
    };
    let mut config = BigQueryConfig::new(project.map(str::to_owned), dataset, credentials);
    if let Some(endpoint) = endpoint {
        config = config.with_endpoint(endpoint);
    }
    Ok(Arc::new(BigQuery::connect(config).await?))
}
