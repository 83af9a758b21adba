//! `--store`: which backend to use, and how its tables are laid out. The
//! naming and opening live in [`toxstore::spec`], shared with `cargo xtask
//! migrate`; this module adds the command line's view of errors (a bad store
//! or table name is a usage error).

use std::sync::Arc;

use clap::Args;
use toxstore::spec::{CREDENTIALS_VAR, DATASET_VAR, PROJECT_VAR, REQUEST_LOG_VAR, STORE_VAR};
pub use toxstore::spec::{OpenOptions, StoreSpec};
use toxstore::{Layout, ModelTable, Store, TableRef, TweetSource};

use crate::exit::{StoreMissing, UsageError};
use crate::import::ColumnArgs;

/// Where the tables are, when they are not toxscore's own: a BigQuery
/// dataset the Python pipeline made. Global flags.
#[derive(Debug, Clone, Args)]
pub struct LayoutArgs {
    /// BigQuery: read the tweets from this table, read-only (another dataset
    /// or project is fine): PROJECT.DATASET.TABLE or DATASET.TABLE. Its
    /// columns are named by --status-id-column and friends; ids may be INT64
    /// or STRING
    #[arg(long, global = true, env = "TOXSCORE_TWEETS_TABLE", value_name = "TABLE")]
    pub tweets_table: Option<String>,

    /// A model's score table under another name, as the Python pipeline's
    /// checkpoint scorer named it: [MODEL=]TABLE, for example
    /// toxicity_scores_original_ckpt (the model is read from the name when
    /// it starts with toxicity_scores_<model>). Repeat, or separate with
    /// commas, for several models
    #[arg(long, global = true, env = "TOXSCORE_SCORE_TABLE", value_name = "[MODEL=]TABLE", value_delimiter = ',')]
    pub score_table: Vec<String>,

    #[command(flatten)]
    pub columns: ColumnArgs,
}

impl LayoutArgs {
    /// The layout these flags describe.
    pub fn layout(&self) -> anyhow::Result<Layout> {
        let mut score_tables = Vec::new();
        for spec in &self.score_table {
            score_tables.push(parse_score_table(spec.trim())?);
        }
        let tweets = match &self.tweets_table {
            None => TweetSource::default(),
            Some(name) => {
                let table =
                    TableRef::parse(name.trim()).map_err(|error| UsageError(format!("--tweets-table: {error}")))?;
                TweetSource {
                    table: Some(table),
                    status_id: self.columns.status_id_column.clone(),
                    user_id: self.columns.user_id_column.clone(),
                    status_text: self.columns.text_column.clone(),
                    // A table elsewhere has a creation time only if named.
                    created_at: self.columns.created_at_column.clone(),
                }
            }
        };
        let layout = Layout { tweets, score_tables };
        layout.validate().map_err(|error| UsageError(format!("--tweets-table / --score-table: {error}")))?;
        Ok(layout)
    }
}

/// `[MODEL=]TABLE`.
fn parse_score_table(spec: &str) -> anyhow::Result<ModelTable> {
    let (model, table) = match spec.split_once('=') {
        Some((model, table)) => (model.trim().to_owned(), table.trim()),
        None => {
            // The longest default table name the given one starts with:
            // `toxicity_scores_original_small_ckpt` is original-small's.
            let model = toxstore::MODEL_TABLES
                .iter()
                .filter(|known| spec.starts_with(known.table.as_ref()))
                .max_by_key(|known| known.table.len())
                .map(|known| known.model.to_owned())
                .ok_or_else(|| {
                    UsageError(format!(
                        "--score-table {spec}: name the model, as MODEL={spec} (the name does not start with \
                         toxicity_scores_<model>)"
                    ))
                })?;
            (model, spec)
        }
    };
    let default = ModelTable::by_model(&model).map_err(|error| UsageError(format!("--score-table {spec}: {error}")))?;
    Ok(default.with_table(table).map_err(|error| UsageError(format!("--score-table {spec}: {error}")))?)
}

/// The store `TOXSCORE_STORE` names, if it is set and not empty; an invalid
/// value is a usage error naming the variable.
fn store_from_environment() -> anyhow::Result<Option<StoreSpec>> {
    let Some(value) = std::env::var_os(STORE_VAR).filter(|value| !value.is_empty()) else {
        return Ok(None);
    };
    let text = value.to_str().ok_or_else(|| UsageError(format!("{STORE_VAR}: the value is not valid UTF-8")))?;
    let spec = text.parse::<StoreSpec>().map_err(|error| UsageError(format!("{STORE_VAR}: {error}")))?;
    Ok(Some(spec))
}

/// Everything needed to open a store, resolved from flags and environment.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Which store.
    pub spec: StoreSpec,
    /// How to reach BigQuery: `--bigquery-endpoint`, the credentials, the layout.
    pub options: OpenOptions,
    /// The tweets' column names, in files and in `--tweets-table`.
    pub columns: ColumnArgs,
}

impl StoreSettings {
    /// Resolves the store from `--store` (`store`), else `TOXSCORE_STORE`,
    /// then `BIGQUERY_DATASET_NAME`, then the default; a
    /// BigQuery dataset without its project takes `BIGQUERY_PROJECT_NAME`.
    pub fn resolve(
        store: Option<StoreSpec>,
        bigquery_endpoint: Option<String>,
        layout: &LayoutArgs,
    ) -> anyhow::Result<StoreSettings> {
        let store = match store {
            Some(spec) => Some(spec),
            None => store_from_environment()?,
        };
        let dataset_name = std::env::var(DATASET_VAR).ok();
        let project_name = std::env::var(PROJECT_VAR).ok();
        let spec = StoreSpec::resolve(store, dataset_name.as_deref(), project_name.as_deref())
            .map_err(|error| UsageError(error.0))?;
        let credentials = std::env::var_os(CREDENTIALS_VAR).map(std::path::PathBuf::from);
        let mut options = OpenOptions::new(bigquery_endpoint, credentials);
        options.layout = layout.layout()?;
        options.request_log =
            std::env::var_os(REQUEST_LOG_VAR).filter(|value| !value.is_empty()).map(std::path::PathBuf::from);
        Ok(StoreSettings { spec, options, columns: layout.columns.clone() })
    }

    /// Opens the store. Nothing is created until a command writes.
    pub async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        self.spec.open(&self.options).await.map_err(|error| match error {
            toxstore::Error::InvalidInput { what } => UsageError(what).into(),
            other => anyhow::Error::new(other).context(format!("opening {}", self.spec)),
        })
    }

    /// Opens a store that must exist already, for the commands that read it
    /// (`status`, `export`, `report`, `migrate --dry-run`): an SQLite file
    /// that is missing is an error and is not created, and with `read_only`
    /// it is opened read-only (it may sit on a read-only file system).
    pub async fn open_existing(&self, read_only: bool) -> anyhow::Result<Arc<dyn Store>> {
        let StoreSpec::Sqlite(path) = &self.spec else {
            return self.open().await;
        };
        let folder_exists = path.parent().is_none_or(|parent| parent.as_os_str().is_empty() || parent.is_dir());
        if !folder_exists {
            // The usage error naming the missing folder; nothing is created.
            return self.open().await;
        }
        if self.options.layout != Layout::default() {
            return Err(UsageError(
                "an SQLite store has toxscore's own tables: --tweets-table and --score-table are for BigQuery \
                 datasets made by the Python pipeline"
                    .to_owned(),
            )
            .into());
        }
        if !path.exists() {
            return Err(StoreMissing(format!(
                "no store at {}: the file does not exist (`toxcli import --input FILE` or `toxcli score --input \
                 FILE` makes one)",
                path.display()
            ))
            .into());
        }
        if !read_only {
            return self.open().await;
        }
        let store = toxstore::Sqlite::open_read_only(path)
            .and_then(|store| store.with_layout(self.options.layout.clone()))
            .map_err(|error| match error {
                toxstore::Error::InvalidInput { what } => UsageError(what).into(),
                other => anyhow::Error::new(other).context(format!("opening {} read-only", self.spec)),
            })?;
        Ok(Arc::new(store))
    }

    /// Whether the store forgets everything when this process ends.
    pub fn is_ephemeral(&self) -> bool {
        self.spec.is_ephemeral()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_tables_name_their_model() {
        let check = |spec: &str, model: &str, table: &str| {
            let parsed = parse_score_table(spec).expect(spec);
            assert_eq!((parsed.model, parsed.table.as_ref()), (model, table), "{spec}");
        };
        check("toxicity_scores_original_ckpt", "original", "toxicity_scores_original_ckpt");
        check("toxicity_scores_original_small_ckpt", "original-small", "toxicity_scores_original_small_ckpt");
        check("unbiased=old_scores", "unbiased", "old_scores");
        assert!(parse_score_table("old_scores").is_err());
        assert!(parse_score_table("nope=old_scores").is_err());
        assert!(parse_score_table("original=x;y").is_err());
    }
}
