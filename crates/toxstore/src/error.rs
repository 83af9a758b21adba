//! The one error type every backend maps its own errors onto.

/// A storage error, the same for every backend so callers can match on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A table, dataset or file that should exist does not.
    #[error("{}", not_found(what))]
    NotFound {
        /// What was looked for, for example `table toxscore.tweets`.
        what: String,
        /// The backend's error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Something to be created exists already.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What exists.
        what: String,
    },
    /// The caller's input is invalid: a bad name, shard, row or setting.
    #[error("invalid input: {what}")]
    InvalidInput {
        /// What is wrong, naming the input.
        what: String,
    },
    /// A table's columns do not fit what toxscore reads or writes: a column
    /// missing, or of another type.
    #[error("table {table}: {problem}")]
    Schema {
        /// The table, as `dataset.table`.
        table: String,
        /// What does not fit, and what to do.
        problem: String,
    },
    /// A migration problem reported by `toxdedup` (edited or unknown migration).
    #[error(transparent)]
    Migration(#[from] toxdedup::Error),
    /// A transient failure that survived the backend's own retries; retrying
    /// the whole operation later may succeed.
    #[error("{backend} is unavailable: {what}")]
    Unavailable {
        /// `bigquery`, `sqlite` or `memory`.
        backend: &'static str,
        /// What failed.
        what: String,
        /// The last underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The credentials were refused. The message names the setting to check
    /// and never contains a token.
    #[error("{backend} refused the credentials: {what}")]
    Unauthenticated {
        /// The backend.
        backend: &'static str,
        /// What to check, for example the `GOOGLE_APPLICATION_CREDENTIALS` file.
        what: String,
    },
    /// Any other backend failure.
    #[error("{backend} error: {what}")]
    Backend {
        /// The backend.
        backend: &'static str,
        /// What was being done.
        what: String,
        /// The backend's own error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether retrying the operation later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }
}

/// `{what} not found`, with a hint in parentheses kept at the end (`table
/// tweets not found (run migrate first)`); a backend's message that says it
/// already (BigQuery's `Not found: Table ...`) is shown as it is.
fn not_found(what: &str) -> String {
    if what.to_ascii_lowercase().contains("not found") {
        return what.to_owned();
    }
    match what.rfind(" (").filter(|_| what.ends_with(')')) {
        Some(hint) => format!("{} not found{}", &what[..hint], &what[hint..]),
        None => format!("{what} not found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_reads_as_a_sentence() {
        let check = |what: &str, expected: &str| {
            assert_eq!(Error::NotFound { what: what.to_owned(), source: None }.to_string(), expected);
        };
        check("table tweets", "table tweets not found");
        check("table d.tweets (run migrate first)", "table d.tweets not found (run migrate first)");
        check("Not found: Table p:d.t", "Not found: Table p:d.t");
    }
}
