//! Naming a store in one string (`sqlite:PATH`, `memory`,
//! `bigquery:PROJECT.DATASET`) and opening it, shared by `toxcli` and
//! `cargo xtask`, so both resolve and authenticate the same way.
//!
//! ```
//! use toxstore::spec::StoreSpec;
//! let spec: StoreSpec = "bigquery:my-project.tweets_2020".parse().unwrap();
//! assert_eq!(spec.to_string(), "bigquery:my-project.tweets_2020");
//! assert!("bigquery:my-project.a;DROP".parse::<StoreSpec>().is_err());
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use crate::Store;
use crate::bigquery::{BigQuery, BigQueryConfig, Credentials};

/// The default store: an SQLite file in the current folder.
pub const DEFAULT_STORE: &str = "sqlite:toxscore.db";

/// Environment variable naming the store (what `--store` sets).
pub const STORE_VAR: &str = "TOXSCORE_STORE";
/// Environment variable of the original Python pipeline: a BigQuery dataset
/// (`DATASET` or `PROJECT.DATASET`), used when no store is named.
pub const DATASET_VAR: &str = "BIGQUERY_DATASET_NAME";
/// Environment variable of the original Python pipeline: the project of
/// [`DATASET_VAR`]'s dataset (the pipeline joins them as `PROJECT.DATASET`),
/// used for a store named without a project.
pub const PROJECT_VAR: &str = "BIGQUERY_PROJECT_NAME";
/// Environment variable naming a BigQuery-compatible endpoint (an emulator).
pub const ENDPOINT_VAR: &str = "TOXSCORE_BIGQUERY_ENDPOINT";
/// Environment variable naming a service-account key file.
pub const CREDENTIALS_VAR: &str = "GOOGLE_APPLICATION_CREDENTIALS";

/// A parsed store name.
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

/// A store name that cannot be used; the message quotes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

impl std::str::FromStr for StoreSpec {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Self, SpecError> {
        if text == "memory" {
            return Ok(StoreSpec::Memory);
        }
        if let Some(path) = text.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err(SpecError(format!("store {text:?}: expected sqlite:PATH, for example {DEFAULT_STORE}")));
            }
            return Ok(StoreSpec::Sqlite(PathBuf::from(path)));
        }
        if let Some(name) = text.strip_prefix("bigquery:") {
            return parse_bigquery(name).map_err(|problem| SpecError(format!("store {text:?}: {problem}")));
        }
        Err(SpecError(format!("store {text:?}: expected sqlite:PATH, memory, or bigquery:PROJECT.DATASET")))
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

impl StoreSpec {
    /// The store to use when the caller named `given` (from a flag or
    /// [`STORE_VAR`]) or none: `given`, else `dataset_name` (the value of
    /// [`DATASET_VAR`], the original pipeline's setting), else
    /// [`DEFAULT_STORE`]. A BigQuery dataset named without its project is in
    /// `project_name` (the value of [`PROJECT_VAR`]) when that is set, as
    /// the pipeline reads the two, else in the credentials' project. The
    /// caller reads the environment.
    pub fn resolve(
        given: Option<StoreSpec>,
        dataset_name: Option<&str>,
        project_name: Option<&str>,
    ) -> Result<StoreSpec, SpecError> {
        let project_name = project_name.map(str::trim).filter(|name| !name.is_empty());
        let spec = match (given, dataset_name.map(str::trim)) {
            (Some(spec), _) => spec,
            (None, Some(name)) if !name.is_empty() => {
                let spec = parse_bigquery(name).map_err(|problem| SpecError(format!("{DATASET_VAR}: {problem}")))?;
                if let (StoreSpec::BigQuery { project: Some(project), .. }, Some(project_name)) = (&spec, project_name)
                    && project != project_name
                {
                    return Err(SpecError(format!(
                        "{DATASET_VAR} is {name:?}, in project {project:?}, but {PROJECT_VAR} is {project_name:?}: \
                         set {DATASET_VAR} to the dataset alone, or unset {PROJECT_VAR}"
                    )));
                }
                spec
            }
            _ => return DEFAULT_STORE.parse(),
        };
        match (spec, project_name) {
            (StoreSpec::BigQuery { project: None, dataset }, Some(project_name)) => {
                parse_bigquery(&format!("{project_name}.{dataset}"))
                    .map_err(|problem| SpecError(format!("{PROJECT_VAR}: {problem}")))
            }
            (spec, _) => Ok(spec),
        }
    }

    /// Opens the store. Nothing is created until a command writes; an SQLite
    /// file's folder must exist.
    pub async fn open(&self, options: &OpenOptions) -> crate::Result<Arc<dyn Store>> {
        match self {
            StoreSpec::Memory => Ok(Arc::new(crate::InMemory::new().with_layout(options.layout.clone())?)),
            StoreSpec::Sqlite(path) => {
                if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty())
                    && !parent.is_dir()
                {
                    return Err(crate::Error::InvalidInput {
                        what: format!("store {self}: the folder {} does not exist", parent.display()),
                    });
                }
                Ok(Arc::new(crate::Sqlite::open(path)?.with_layout(options.layout.clone())?))
            }
            StoreSpec::BigQuery { project, dataset } => {
                let endpoint = options.bigquery_endpoint.as_deref();
                let credentials = match (&options.credentials, endpoint) {
                    (Some(key_file), _) => Credentials::ServiceAccountKeyFile(key_file.clone()),
                    // An emulator ignores tokens.
                    (None, Some(_)) => Credentials::StaticToken("emulator".to_owned()),
                    (None, None) => Credentials::ApplicationDefault,
                };
                let mut config =
                    BigQueryConfig::new(project.clone(), dataset, credentials).with_layout(options.layout.clone());
                if let Some(endpoint) = endpoint {
                    config = config.with_endpoint(endpoint);
                }
                if let Some(path) = &options.request_log {
                    let file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|error| {
                        crate::Error::InvalidInput {
                            what: format!("the BigQuery request log {}: {error}", path.display()),
                        }
                    })?;
                    config = config.with_request_log(crate::bigquery::RequestLog::new(file));
                }
                Ok(Arc::new(BigQuery::connect(config).await?))
            }
        }
    }

    /// Whether the store forgets everything when the process ends.
    pub fn is_ephemeral(&self) -> bool {
        *self == StoreSpec::Memory
    }
}

/// How to reach a BigQuery store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// A BigQuery-compatible endpoint (the emulator); `None` for Google's.
    pub bigquery_endpoint: Option<String>,
    /// A service-account key file. Without one: a constant token for an
    /// endpoint (emulators ignore it), else Google's application default
    /// credentials.
    pub credentials: Option<PathBuf>,
    /// The tables, where they are not toxscore's own (a dataset the Python
    /// pipeline made).
    pub layout: crate::Layout,
    /// BigQuery: a file that every statement and insert is appended to, one
    /// JSON object a line (the caller reads [`REQUEST_LOG_VAR`]).
    pub request_log: Option<PathBuf>,
}

/// The variable naming [`OpenOptions::request_log`].
pub const REQUEST_LOG_VAR: &str = "TOXSCORE_BIGQUERY_LOG";

impl OpenOptions {
    /// From the values of `--bigquery-endpoint` / [`ENDPOINT_VAR`] and
    /// [`CREDENTIALS_VAR`] as the caller read them; empty values count as
    /// unset.
    pub fn new(endpoint: Option<String>, credentials: Option<PathBuf>) -> OpenOptions {
        OpenOptions {
            bigquery_endpoint: endpoint.filter(|url| !url.trim().is_empty()),
            credentials: credentials.filter(|path| !path.as_os_str().is_empty()),
            layout: crate::Layout::default(),
            request_log: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<StoreSpec, &str>) {
        let parsed = text.parse::<StoreSpec>().map_err(|error| error.0);
        match (parsed, expected) {
            (Ok(found), Ok(expected)) => assert_eq!(found, expected),
            (Err(found), Err(expected)) => {
                assert!(found.contains(expected) && found.contains(text), "{found}");
            }
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
        check("bigquery:.d", Err("project \"\""));
        check("bigquery:p.", Err("expected bigquery:PROJECT.DATASET"));
        check("postgres:x", Err("expected sqlite:PATH, memory, or bigquery"));
        for text in ["memory", "sqlite:a/b.db", "bigquery:my-project.tweets_2020", "bigquery:tweets"] {
            assert_eq!(text.parse::<StoreSpec>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn resolve_takes_the_given_store_then_the_dataset_name_then_the_default() {
        let given = Some(StoreSpec::Memory);
        assert_eq!(StoreSpec::resolve(given, Some("tweets"), None), Ok(StoreSpec::Memory));
        let dataset = StoreSpec::BigQuery { project: Some("my-project".into()), dataset: "tweets".into() };
        assert_eq!(StoreSpec::resolve(None, Some(" my-project.tweets "), None), Ok(dataset.clone()));
        assert_eq!(StoreSpec::resolve(None, Some("  "), None), Ok(StoreSpec::Sqlite("toxscore.db".into())));
        assert_eq!(StoreSpec::resolve(None, None, None), Ok(StoreSpec::Sqlite("toxscore.db".into())));
        let error = StoreSpec::resolve(None, Some("a;b"), None).unwrap_err();
        assert!(error.0.starts_with("BIGQUERY_DATASET_NAME: "), "{error}");

        // The pipeline's two variables, as its bq_service.py joins them.
        assert_eq!(StoreSpec::resolve(None, Some("tweets"), Some("my-project")), Ok(dataset.clone()));
        assert_eq!(StoreSpec::resolve(None, Some("my-project.tweets"), Some("my-project")), Ok(dataset.clone()));
        let error = StoreSpec::resolve(None, Some("other-project.tweets"), Some("my-project")).unwrap_err();
        assert!(error.0.contains("BIGQUERY_PROJECT_NAME is \"my-project\""), "{error}");
        let error = StoreSpec::resolve(None, Some("tweets"), Some("My_Project")).unwrap_err();
        assert!(error.0.starts_with("BIGQUERY_PROJECT_NAME: project \"My_Project\""), "{error}");
        // A store named without a project takes it too; one with a project keeps it.
        let named = |text: &str| Some(text.parse::<StoreSpec>().expect("a store"));
        assert_eq!(StoreSpec::resolve(named("bigquery:tweets"), None, Some("my-project")), Ok(dataset.clone()));
        assert_eq!(StoreSpec::resolve(named("bigquery:my-project.tweets"), None, Some("else-where")), Ok(dataset));
        assert_eq!(StoreSpec::resolve(named("memory"), None, Some("my-project")), Ok(StoreSpec::Memory));
        assert_eq!(StoreSpec::resolve(None, None, Some("my-project")), Ok(StoreSpec::Sqlite("toxscore.db".into())));
    }

    #[tokio::test]
    async fn a_sqlite_file_in_a_missing_folder_is_refused_before_anything_is_created() {
        let folder = tempfile::tempdir().unwrap();
        let spec = StoreSpec::Sqlite(folder.path().join("missing/toxscore.db"));
        let error = spec.open(&OpenOptions::default()).await.err().expect("refused");
        assert!(error.to_string().contains("does not exist"), "{error}");
        assert!(!folder.path().join("missing").exists());
    }
}
