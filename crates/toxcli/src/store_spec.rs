//! `--store`: which backend to use, parsed once into a [`StoreSpec`].

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use toxstore::Store;

use crate::exit::UsageError;

/// The default store: an SQLite file in the current folder.
pub const DEFAULT_STORE: &str = "sqlite:toxscore.db";

/// A parsed `--store` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// `sqlite:PATH`.
    Sqlite(PathBuf),
    /// `memory`: lives as long as the process.
    Memory,
    /// `bigquery:PROJECT.DATASET`, or `bigquery:DATASET` with the project
    /// taken from the credentials.
    BigQuery {
        /// The project, when given.
        project: Option<String>,
        /// The dataset.
        dataset: String,
    },
}

impl std::str::FromStr for StoreSpec {
    type Err = UsageError;

    fn from_str(text: &str) -> Result<Self, UsageError> {
        if text == "memory" {
            return Ok(StoreSpec::Memory);
        }
        if let Some(path) = text.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err(UsageError(format!("--store {text:?}: expected sqlite:PATH, for example {DEFAULT_STORE}")));
            }
            return Ok(StoreSpec::Sqlite(PathBuf::from(path)));
        }
        if let Some(name) = text.strip_prefix("bigquery:") {
            return parse_bigquery(name).map_err(|problem| UsageError(format!("--store {text:?}: {problem}")));
        }
        Err(UsageError(format!("--store {text:?}: expected sqlite:PATH, memory, or bigquery:PROJECT.DATASET")))
    }
}

/// Parses `PROJECT.DATASET` or `DATASET`. The names are checked again by the
/// backend before any SQL is built; this check gives the early, clear message.
pub fn parse_bigquery(name: &str) -> Result<StoreSpec, String> {
    let (project, dataset) = match name.split_once('.') {
        Some((project, dataset)) => (Some(project), dataset),
        None => (None, name),
    };
    if dataset.is_empty() {
        return Err(
            "expected bigquery:PROJECT.DATASET (or bigquery:DATASET with the project from the credentials)".into()
        );
    }
    let valid_dataset =
        dataset.len() <= 1024 && dataset.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_');
    if !valid_dataset {
        return Err(format!("dataset {dataset:?}: only letters, digits and underscores are allowed"));
    }
    if let Some(project) = project {
        let valid_project = (6..=30).contains(&project.len())
            && project.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
            && project.as_bytes()[0].is_ascii_lowercase();
        if !valid_project {
            return Err(format!(
                "project {project:?}: 6 to 30 lowercase letters, digits or hyphens, starting with a letter"
            ));
        }
    }
    Ok(StoreSpec::BigQuery { project: project.map(str::to_owned), dataset: dataset.to_owned() })
}

impl std::fmt::Display for StoreSpec {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreSpec::Sqlite(path) => write!(formatter, "sqlite:{}", path.display()),
            StoreSpec::Memory => formatter.write_str("memory"),
            StoreSpec::BigQuery { project: Some(project), dataset } => {
                write!(formatter, "bigquery:{project}.{dataset}")
            }
            StoreSpec::BigQuery { project: None, dataset } => write!(formatter, "bigquery:{dataset}"),
        }
    }
}

/// Everything needed to open a store, resolved from flags and environment.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Which store.
    pub spec: StoreSpec,
    /// `--bigquery-endpoint`: a BigQuery-compatible endpoint (the emulator).
    pub bigquery_endpoint: Option<String>,
    /// `GOOGLE_APPLICATION_CREDENTIALS`: a service-account key file.
    pub credentials: Option<PathBuf>,
}

impl StoreSettings {
    /// Opens the store. Nothing is created until a command writes.
    pub async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        match &self.spec {
            StoreSpec::Memory => Ok(Arc::new(toxstore::InMemory::new())),
            StoreSpec::Sqlite(path) => {
                if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty())
                    && !parent.is_dir()
                {
                    return Err(UsageError(format!(
                        "--store sqlite:{}: the folder {} does not exist",
                        path.display(),
                        parent.display()
                    ))
                    .into());
                }
                let store =
                    toxstore::Sqlite::open(path).with_context(|| format!("opening sqlite:{}", path.display()))?;
                Ok(Arc::new(store))
            }
            StoreSpec::BigQuery { project, dataset } => crate::bigquery_store::open(
                project.as_deref(),
                dataset,
                self.bigquery_endpoint.as_deref(),
                self.credentials.as_deref(),
            )
            .await
            .with_context(|| format!("opening {}", self.spec)),
        }
    }

    /// Whether the store forgets everything when this process ends.
    pub fn is_ephemeral(&self) -> bool {
        self.spec == StoreSpec::Memory
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<StoreSpec, &str>) {
        let parsed = text.parse::<StoreSpec>().map_err(|error| error.0);
        match (parsed, expected) {
            (Ok(found), Ok(expected)) => assert_eq!(found, expected),
            (Err(found), Err(expected)) => assert!(found.contains(expected), "{found}"),
            (found, expected) => panic!("{text}: {found:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn store_specs() {
        check("memory", Ok(StoreSpec::Memory));
        check("sqlite:a/b.db", Ok(StoreSpec::Sqlite("a/b.db".into())));
        check("sqlite:", Err("expected sqlite:PATH"));
        check(
            "bigquery:my-project.tweets_2020",
            Ok(StoreSpec::BigQuery { project: Some("my-project".into()), dataset: "tweets_2020".into() }),
        );
        check("bigquery:tweets", Ok(StoreSpec::BigQuery { project: None, dataset: "tweets".into() }));
        check("bigquery:my-project.a`b", Err("only letters, digits and underscores"));
        check("bigquery:my-project.a; DROP", Err("only letters"));
        check("bigquery:My_Project.a", Err("project \"My_Project\""));
        check("postgres:x", Err("expected sqlite:PATH, memory, or bigquery"));
    }
}
