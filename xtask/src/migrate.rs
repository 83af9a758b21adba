//! `cargo xtask migrate`: applies the schema migrations to a store, then
//! de-duplicates its texts, and prints what it did: `toxcli migrate`, built
//! and run by cargo.
//!
//! ```text
//! cargo xtask migrate [--store sqlite:PATH | --store bigquery:[PROJECT.]DATASET] [--bigquery-endpoint URL] [--dry-run]
//! ```
//!
//! It runs `cargo run --release --package toxcli -- migrate ARGS`, so the
//! store is named, opened and migrated by the code users run: `--store`, else
//! `TOXSCORE_STORE`, else `BIGQUERY_DATASET_NAME`, else `sqlite:toxscore.db`;
//! BigQuery credentials from `GOOGLE_APPLICATION_CREDENTIALS`, else Google's
//! application default credentials; `--bigquery-endpoint` /
//! `TOXSCORE_BIGQUERY_ENDPOINT` for an emulator. xtask itself links no
//! store: the BigQuery client, tokio and their graph are built with
//! toxcli's features only, never a second time with xtask's (which cost a
//! clean `.ci/run` minutes).

use std::ffi::OsString;
use std::process::Command;

use anyhow::{Context, Result, bail};

const HELP: &str = "usage: cargo xtask migrate [toxcli migrate's flags]

Applies the schema migrations of toxdedup to a store, adopts the Python
pipeline's tables, then de-duplicates its texts (refresh), printing what was
applied and what was already there: `toxcli migrate`, built and run by cargo
(`cargo run --release --package toxcli -- migrate ...`).

  --store STORE              sqlite:PATH (default sqlite:toxscore.db), or
                             bigquery:PROJECT.DATASET (bigquery:DATASET takes the
                             project from the credentials); also read from
                             TOXSCORE_STORE, then BIGQUERY_DATASET_NAME
  --bigquery-endpoint URL    a BigQuery-compatible endpoint such as the emulator;
                             also read from TOXSCORE_BIGQUERY_ENDPOINT
  --dry-run                  change nothing: print the statements a real run sends

BigQuery credentials: the service-account key file in
GOOGLE_APPLICATION_CREDENTIALS, else Google's application default credentials
(with an endpoint and no key file, a placeholder token the emulator accepts).
Every other toxcli flag works too: `toxcli migrate --help`.
";

/// The cargo command line that runs `toxcli migrate args`.
fn toxcli_migrate(args: &[String]) -> Vec<OsString> {
    let mut line: Vec<OsString> =
        ["run", "--release", "--package", "toxcli", "--bin", "toxcli", "--", "migrate"].map(OsString::from).into();
    line.extend(args.iter().map(OsString::from));
    line
}

pub fn run(args: &[String]) -> Result<()> {
    if args.iter().any(|arg| arg == "-h" || arg == "--help") {
        print!("{HELP}");
        return Ok(());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let line = toxcli_migrate(args);
    let status = Command::new(&cargo).args(&line).status().context("running cargo run --package toxcli")?;
    if !status.success() {
        // toxcli has said what went wrong; its exit code says which kind.
        bail!("toxcli migrate failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_go_to_toxcli_migrate_as_given() {
        let args: Vec<String> =
            ["--store", "bigquery:tox", "--bigquery-endpoint=http://127.0.0.1:9050"].map(str::to_owned).into();
        let line: Vec<String> =
            toxcli_migrate(&args).into_iter().map(|arg| arg.into_string().expect("UTF-8")).collect();
        assert_eq!(
            line,
            [
                "run",
                "--release",
                "--package",
                "toxcli",
                "--bin",
                "toxcli",
                "--",
                "migrate",
                "--store",
                "bigquery:tox",
                "--bigquery-endpoint=http://127.0.0.1:9050"
            ]
        );
    }
}
