//! `cargo xtask migrate`: applies the schema migrations to a store, then
//! de-duplicates its texts, and prints what it did.
//!
//! ```text
//! cargo xtask migrate [--store sqlite:PATH | --store bigquery:PROJECT.DATASET]
//! ```
//!
//! The store comes from `--store`, else from `TOXSCORE_STORE`, else
//! `sqlite:toxscore.db`.

use anyhow::{Context, Result, bail};
use toxstore::Store;

const HELP: &str = "usage: cargo xtask migrate [--store STORE]

Applies the schema migrations of toxdedup to a store, then de-duplicates its
texts (refresh), printing what was applied and what was already there.

  --store STORE   sqlite:PATH (default sqlite:toxscore.db) or
                  bigquery:PROJECT.DATASET; also read from TOXSCORE_STORE
";

/// Where to migrate.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Sqlite(String),
    BigQuery { project: String, dataset: String },
}

fn parse_target(value: &str) -> Result<Target> {
    if let Some(path) = value.strip_prefix("sqlite:") {
        if path.is_empty() {
            bail!("store {value:?}: the SQLite path is empty (expected sqlite:PATH)");
        }
        return Ok(Target::Sqlite(path.to_owned()));
    }
    if let Some(name) = value.strip_prefix("bigquery:") {
        let Some((project, dataset)) = name.rsplit_once('.') else {
            bail!("store {value:?}: expected bigquery:PROJECT.DATASET");
        };
        if project.is_empty() || dataset.is_empty() {
            bail!("store {value:?}: expected bigquery:PROJECT.DATASET");
        }
        return Ok(Target::BigQuery { project: project.to_owned(), dataset: dataset.to_owned() });
    }
    bail!("store {value:?}: expected sqlite:PATH or bigquery:PROJECT.DATASET")
}

fn parse_args(args: &[String], environment: Option<String>) -> Result<Option<Target>> {
    let mut store = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--store" => store = Some(args.next().context("--store needs a value")?.clone()),
            other => match other.strip_prefix("--store=") {
                Some(value) => store = Some(value.to_owned()),
                None => bail!("unknown argument {other:?}\n\n{HELP}"),
            },
        }
    }
    let store = store.or(environment).unwrap_or_else(|| "sqlite:toxscore.db".to_owned());
    parse_target(&store).map(Some)
}

pub fn run(args: &[String]) -> Result<()> {
    let Some(target) = parse_args(args, std::env::var("TOXSCORE_STORE").ok())? else {
        print!("{HELP}");
        return Ok(());
    };
    let store = match target {
        Target::Sqlite(path) => {
            toxstore::Sqlite::open(&path).with_context(|| format!("opening the SQLite store {path}"))?
        }
        Target::BigQuery { project, dataset } => bail!(
            "bigquery:{project}.{dataset}: cargo xtask migrate only handles SQLite; \
             use `toxcli migrate --store bigquery:{project}.{dataset}`, which reads the BigQuery credentials"
        ),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    runtime.block_on(migrate(&store, &store.path().display().to_string()))
}

async fn migrate(store: &dyn Store, name: &str) -> Result<()> {
    let report = store.migrate().await.with_context(|| format!("migrating {name}"))?;
    for file in &report.already_applied {
        println!("already applied  {file}");
    }
    for file in &report.applied {
        println!("applied          {file}");
    }
    if report.applied.is_empty() {
        println!("{name}: the schema is up to date");
    }
    let dedup = store.refresh_texts().await.with_context(|| format!("de-duplicating the texts of {name}"))?;
    println!(
        "{name}: {} new texts, {} new status ids, {} conflicting rows",
        dedup.new_texts, dedup.new_statuses, dedup.conflicts
    );
    for conflict in &dedup.conflict_examples {
        println!(
            "  conflict: status {} kept {:?}, rejected {:?}",
            conflict.status_id, conflict.kept, conflict.rejected
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(args: &[&str], environment: Option<&str>, expected: Option<Target>) {
        let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        assert_eq!(parse_args(&args, environment.map(str::to_owned)).expect("valid"), expected, "{args:?}");
    }

    #[test]
    fn the_store_comes_from_the_flag_then_the_environment_then_the_default() {
        check(&[], None, Some(Target::Sqlite("toxscore.db".into())));
        check(&[], Some("sqlite:/tmp/x.db"), Some(Target::Sqlite("/tmp/x.db".into())));
        check(&["--store", "sqlite:a.db"], Some("sqlite:b.db"), Some(Target::Sqlite("a.db".into())));
        check(
            &["--store=bigquery:my-project.tox"],
            None,
            Some(Target::BigQuery { project: "my-project".into(), dataset: "tox".into() }),
        );
        check(&["--help"], None, None);
    }

    #[test]
    fn bad_stores_are_errors() {
        for bad in ["postgres:x", "sqlite:", "bigquery:nodot", "bigquery:.d"] {
            let error = parse_args(&["--store".to_owned(), bad.to_owned()], None).expect_err(bad);
            assert!(error.to_string().contains(bad), "{error}");
        }
        assert!(parse_args(&["--bogus".to_owned()], None).is_err());
    }

    #[test]
    fn migrate_runs_twice_on_a_sqlite_file() {
        let folder = tempfile::tempdir().expect("temporary folder");
        let path = folder.path().join("toxscore.db");
        let args = vec!["--store".to_owned(), format!("sqlite:{}", path.display())];
        run(&args).expect("first migrate");
        run(&args).expect("second migrate");
        assert!(path.exists());
    }
}
