//! `cargo xtask migrate`: applies the schema migrations to a store, then
//! de-duplicates its texts, and prints what it did.
//!
//! ```text
//! cargo xtask migrate [--store sqlite:PATH | --store bigquery:[PROJECT.]DATASET] [--bigquery-endpoint URL]
//! ```
//!
//! The store is named and opened by `toxstore::spec`, exactly as `toxcli`
//! does: `--store`, else `TOXSCORE_STORE`, else `BIGQUERY_DATASET_NAME`, else
//! `sqlite:toxscore.db`; BigQuery credentials from
//! `GOOGLE_APPLICATION_CREDENTIALS`, else Google's application default
//! credentials; `--bigquery-endpoint` / `TOXSCORE_BIGQUERY_ENDPOINT` for an
//! emulator.

use anyhow::{Context, Result, bail};
use toxstore::Store;
use toxstore::spec::{CREDENTIALS_VAR, DATASET_VAR, ENDPOINT_VAR, OpenOptions, STORE_VAR, StoreSpec};

const HELP: &str = "usage: cargo xtask migrate [--store STORE] [--bigquery-endpoint URL]

Applies the schema migrations of toxdedup to a store, then de-duplicates its
texts (refresh), printing what was applied and what was already there.

  --store STORE              sqlite:PATH (default sqlite:toxscore.db), or
                             bigquery:PROJECT.DATASET (bigquery:DATASET takes the
                             project from the credentials); also read from
                             TOXSCORE_STORE, then BIGQUERY_DATASET_NAME
  --bigquery-endpoint URL    a BigQuery-compatible endpoint such as the emulator;
                             also read from TOXSCORE_BIGQUERY_ENDPOINT

BigQuery credentials: the service-account key file in
GOOGLE_APPLICATION_CREDENTIALS, else Google's application default credentials
(with an endpoint and no key file, a placeholder token the emulator accepts).
";

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    store: StoreSpec,
    endpoint: Option<String>,
}

/// `store_var` and `dataset_var`: the values of `TOXSCORE_STORE` and
/// `BIGQUERY_DATASET_NAME`, read by the caller.
fn parse_args(args: &[String], store_var: Option<String>, dataset_var: Option<String>) -> Result<Option<Request>> {
    let mut store = None;
    let mut endpoint = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value =
            || inline.clone().or_else(|| args.next().cloned()).with_context(|| format!("{flag} needs a value"));
        match flag {
            "-h" | "--help" => return Ok(None),
            "--store" => store = Some(value()?),
            "--bigquery-endpoint" => endpoint = Some(value()?),
            other => bail!("unknown argument {other:?}\n\n{HELP}"),
        }
    }
    let given = store.or(store_var.filter(|value| !value.trim().is_empty()));
    let given = given.map(|text| text.parse::<StoreSpec>()).transpose()?;
    let store = StoreSpec::resolve(given, dataset_var.as_deref())?;
    if store.is_ephemeral() {
        bail!(
            "store memory: an in-memory store ends with this command; migrate sqlite:PATH or bigquery:PROJECT.DATASET"
        );
    }
    Ok(Some(Request { store, endpoint }))
}

pub fn run(args: &[String]) -> Result<()> {
    let Some(request) = parse_args(args, std::env::var(STORE_VAR).ok(), std::env::var(DATASET_VAR).ok())? else {
        print!("{HELP}");
        return Ok(());
    };
    let endpoint = request.endpoint.or_else(|| std::env::var(ENDPOINT_VAR).ok());
    let options = OpenOptions::new(endpoint, std::env::var_os(CREDENTIALS_VAR).map(Into::into));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    runtime.block_on(async {
        let name = request.store.to_string();
        let store = request.store.open(&options).await.with_context(|| format!("opening {name}"))?;
        migrate(store.as_ref(), &name).await
    })
}

async fn migrate(store: &dyn Store, name: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    report(store, name, &mut out).await
}

/// Migrates and de-duplicates, writing what was done to `out`.
async fn report(store: &dyn Store, name: &str, out: &mut dyn std::io::Write) -> Result<()> {
    let report = store.migrate().await.with_context(|| format!("migrating {name}"))?;
    for file in &report.already_applied {
        writeln!(out, "already applied  {file}")?;
    }
    for file in &report.applied {
        writeln!(out, "applied          {file}")?;
    }
    if report.applied.is_empty() {
        writeln!(out, "{name}: the schema is up to date")?;
    }
    let dedup = store.refresh_texts().await.with_context(|| format!("de-duplicating the texts of {name}"))?;
    writeln!(
        out,
        "{name}: {} new texts, {} new status ids, {} conflicting rows",
        dedup.new_texts, dedup.new_statuses, dedup.conflicts
    )?;
    for conflict in &dedup.conflict_examples {
        writeln!(
            out,
            "  conflict: status {} kept {:?}, rejected {:?}",
            conflict.status_id, conflict.kept, conflict.rejected
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| (*arg).to_owned()).collect()
    }

    fn check(given: &[&str], environment: Option<&str>, expected: Option<(&str, Option<&str>)>) {
        let expected = expected.map(|(store, endpoint)| Request {
            store: store.parse().expect("valid store"),
            endpoint: endpoint.map(str::to_owned),
        });
        assert_eq!(
            parse_args(&args(given), environment.map(str::to_owned), None).expect("valid"),
            expected,
            "{given:?}"
        );
    }

    #[test]
    fn the_store_comes_from_the_flag_then_the_environment_then_the_default() {
        check(&[], None, Some(("sqlite:toxscore.db", None)));
        check(&[], Some("sqlite:/tmp/x.db"), Some(("sqlite:/tmp/x.db", None)));
        check(&["--store", "sqlite:a.db"], Some("sqlite:b.db"), Some(("sqlite:a.db", None)));
        check(&["--store=bigquery:my-project.tox"], None, Some(("bigquery:my-project.tox", None)));
        check(
            &["--store", "bigquery:tox", "--bigquery-endpoint", "http://127.0.0.1:9050"],
            None,
            Some(("bigquery:tox", Some("http://127.0.0.1:9050"))),
        );
        check(&["--help"], None, None);
    }

    #[test]
    fn bad_stores_are_errors_quoting_them() {
        for bad in ["postgres:x", "sqlite:", "bigquery:.d", "bigquery:my-project.a;DROP", "memory"] {
            let error = parse_args(&args(&["--store", bad]), None, None).expect_err(bad);
            assert!(error.to_string().contains(bad), "{error}");
        }
        assert!(parse_args(&args(&["--bogus"]), None, None).is_err());
        assert!(parse_args(&args(&["--store"]), None, None).unwrap_err().to_string().contains("--store needs a value"));
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

    /// `cargo xtask migrate --store bigquery:...` on the real BigQuery
    /// emulator (started by `cargo xtask test`, which sets
    /// `TOXSCORE_BIGQUERY_EMULATOR`; without it this test fails, it never
    /// skips): the first run applies every migration, the second applies
    /// none, and tweets imported in between are de-duplicated.
    #[test]
    fn migrate_applies_then_reports_up_to_date_on_the_bigquery_emulator() {
        let endpoint = std::env::var("TOXSCORE_BIGQUERY_EMULATOR").expect(
            "TOXSCORE_BIGQUERY_EMULATOR is not set: run the tests with `cargo xtask test`, which starts the emulator",
        );
        let name = format!("bigquery:test-project.xtask_migrate_{}", std::process::id());
        let request = parse_args(&args(&["--store", &name, "--bigquery-endpoint", &endpoint]), None, None)
            .expect("valid")
            .expect("not help");
        let options = OpenOptions { bigquery_endpoint: request.endpoint.clone(), ..OpenOptions::default() };
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        let (first, second) = runtime.block_on(async {
            let store = request.store.open(&options).await.expect("open");
            let mut first = Vec::new();
            report(store.as_ref(), &name, &mut first).await.expect("first migrate");
            let tweets = [(1, "same text"), (2, "same text"), (3, "another text")].map(|(status_id, text)| {
                toxstore::Tweet { status_id, user_id: 9, status_text: text.to_owned(), created_at: None }
            });
            store.import_tweets(&tweets).await.expect("import");
            // A fresh connection, as a second `cargo xtask migrate` would open.
            let store = request.store.open(&options).await.expect("reopen");
            let mut second = Vec::new();
            report(store.as_ref(), &name, &mut second).await.expect("second migrate");
            (String::from_utf8(first).unwrap(), String::from_utf8(second).unwrap())
        });
        let migrations = toxdedup_files(&first, "applied          ");
        assert!(migrations.len() >= 3, "{first}");
        assert!(!first.contains("already applied"), "{first}");
        assert_eq!(toxdedup_files(&second, "already applied  "), migrations, "{second}");
        assert!(second.contains("the schema is up to date"), "{second}");
        assert!(second.contains(": 2 new texts, 3 new status ids, 0 conflicting rows"), "{second}");
    }

    fn toxdedup_files(output: &str, prefix: &str) -> Vec<String> {
        output.lines().filter_map(|line| line.strip_prefix(prefix)).map(str::to_owned).collect()
    }
}
