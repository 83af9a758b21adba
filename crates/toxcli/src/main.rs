//! `toxcli`: score millions of short texts with the Detoxify toxicity
//! classifiers.
//!
//! The binary is glue: it parses arguments and environment variables into
//! settings once, picks the store backend, builds the tokio runtime, renders
//! progress and output, and maps errors to exit codes ([`exit::Exit`]).
//! The work itself lives in the libraries: `toxmodel` (the models),
//! `toxdedup` (schema and de-duplication) and `toxstore` (storage).

/// `eprintln!` that ignores a failed write. std's panics when stderr is
/// closed (`2>&-`, a supervisor that closed the pipe), and the panic hook's
/// own message then panics again, which aborts the process: a message nobody
/// can read is no reason to stop the work. Defined before the `mod` lines, so
/// that it shadows std's macro in every module of the crate.
macro_rules! eprintln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod exit;
mod export;
mod import;
mod migrate;
mod model_args;
mod models;
mod output;
mod predict;
mod progress;
mod report;
mod score;
mod status;
mod store_spec;
mod tweets;
mod verify;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::exit::Exit;
use crate::store_spec::{LayoutArgs, StoreSettings, StoreSpec};

const ENVIRONMENT_HELP: &str = "\
Environment variables (a flag given on the command line wins):
  TOXSCORE_STORE                  --store
  BIGQUERY_DATASET_NAME           when --store is not set: use bigquery:<its value>
                                  (PROJECT.DATASET, or DATASET in BIGQUERY_PROJECT_NAME's project)
  BIGQUERY_PROJECT_NAME           the project of a BigQuery dataset named without one, as the Python
                                  pipeline reads it (else the project of the credentials)
  GOOGLE_APPLICATION_CREDENTIALS  service-account key file for BigQuery (never printed)
  TOXSCORE_BIGQUERY_ENDPOINT      --bigquery-endpoint (a BigQuery emulator)
  TOXSCORE_TWEETS_TABLE           --tweets-table: read tweets from a BigQuery table toxscore does not own
  TOXSCORE_SCORE_TABLE            --score-table: [MODEL=]TABLE, a model's score table under another name
  TOXSCORE_BIGQUERY_LOG           append every BigQuery statement and insert to this file (JSON lines)
  MODEL_NAME                      --model (score, export, report, predict)
  LIMIT                           score --limit
  BATCH_SIZE                      score --batch-size
  MAX_THREADS                     score --threads
  TOXSCORE_DEVICE                 --device (cpu, ndarray, wgpu[:N], cuda[:N], as compiled in)
  TOXSCORE_PRECISION              --precision (f32)
  TOXSCORE_OFFLINE                --offline: never download a model
  TOXSCORE_CACHE_DIR              model cache folder (default $XDG_CACHE_HOME/toxscore, else ~/.cache/toxscore)
  TORCH_HOME                      where Detoxify's downloads are used from ($TORCH_HOME/hub/checkpoints;
                                  default $XDG_CACHE_HOME/torch, else ~/.cache/torch)
  TOXSCORE_RELEASE_BASE_URL       where models are downloaded from (a mirror)
  TOXSCORE_TOKENIZER_BASE_URL     where tokenizer files are downloaded from (a mirror)

Exit codes:
  0    success
  1    unexpected failure (a bug: please report it)
  2    usage: a wrong flag, value or setting
  3    input or output: an unreadable tweet file or predict input, a bad row under --strict,
       no valid rows, an --output that cannot be written
  4    store or network: SQLite, BigQuery or a download failed, no store at an SQLite path,
       another score already running (its lock)
  5    model: the checkpoint or tokenizer could not be loaded or verified
  6    verify: stored scores differ from the model's by more than --tolerance
  130  interrupted by Ctrl-C; what was scored is committed, run the command again to resume";

/// `toxcli --version`: the version and the devices this build can run on
/// (the GPU ones are Cargo features).
static LONG_VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let devices: Vec<String> = toxmodel::device::DeviceSpec::compiled_in().iter().map(ToString::to_string).collect();
    format!("{}\ndevices: {}", env!("CARGO_PKG_VERSION"), devices.join(", "))
});

/// Score millions of short texts (tweets) with the Detoxify toxicity
/// classifiers, de-duplicating texts and storing scores in SQLite or BigQuery.
#[derive(Debug, Parser)]
#[command(name = "toxcli", version, long_version = LONG_VERSION.as_str(), after_long_help = ENVIRONMENT_HELP, after_help = "Run `toxcli --help` for environment variables and exit codes.")]
struct Cli {
    /// Where tweets and scores live: sqlite:PATH, memory, or
    /// bigquery:PROJECT.DATASET [env: TOXSCORE_STORE] [default: sqlite:toxscore.db]
    // TOXSCORE_STORE is read by `StoreSettings::resolve`, not by clap: clap
    // parses a global argument's variable in every subcommand, even where the
    // flag was given, so a bad variable would break the flag meant to override it.
    #[arg(long, global = true, value_name = "STORE")]
    store: Option<StoreSpec>,

    /// A BigQuery-compatible endpoint, such as the emulator
    /// (http://127.0.0.1:9050); default: Google's
    #[arg(long, global = true, env = "TOXSCORE_BIGQUERY_ENDPOINT", value_name = "URL")]
    bigquery_endpoint: Option<String>,

    #[command(flatten)]
    layout: LayoutArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Import a tweets file (CSV or JSON lines) into the store.
    Import(import::ImportArgs),
    /// Apply the schema migrations, adopt the Python pipeline's tables, and
    /// de-duplicate the imported texts.
    Migrate(migrate::MigrateArgs),
    /// Score the texts not scored yet (with --input: import and migrate first).
    Score(score::ScoreArgs),
    /// Write one row per status id with its text's scores (CSV or JSON lines).
    Export(export::ExportArgs),
    /// Show the counts per model: texts, scored, remaining.
    Status,
    /// Write one self-contained HTML page of what a model's scores say:
    /// counts, histograms, toxicity per day, the most toxic users and texts.
    Report(report::ReportArgs),
    /// Rescore a seeded sample of the stored scores and compare: do they
    /// belong to their texts, and does this model give them? (The Python
    /// pipeline's adopted rows, another run's checkpoint.)
    Verify(verify::VerifyArgs),
    /// List, download and verify the released Detoxify models.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Score texts given on the command line, in a file or on stdin; print
    /// one JSON object per text.
    Predict(predict::PredictArgs),
}

fn main() -> ExitCode {
    // The hook must never panic itself (a second panic aborts): the crate's
    // `eprintln!` ignores a closed stderr.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: internal error (a bug in toxcli, please report it): {info}");
    }));
    let parsed =
        ignore_empty_environment(Cli::command()).try_get_matches().and_then(|matches| Cli::from_arg_matches(&matches));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(error) => {
            // clap prints help and version to stdout with code 0, and usage
            // errors to stderr with code 2.
            let _ = error.print();
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
    };
    match run(cli) {
        Ok(()) => Exit::Success.into(),
        // The reader of our output went away (`| head`): nothing is wrong.
        Err(error) if output::is_stdout_closed(&error) => Exit::Success.into(),
        Err(error) => {
            let code = exit::classify(&error);
            if code != Exit::Interrupted {
                exit::report(&error);
            }
            code.into()
        }
    }
}

/// Treats an environment variable that is set but empty (`LIMIT=`, as a
/// compose file or a job template may leave it) as unset, for every flag that
/// reads one.
fn ignore_empty_environment(mut command: clap::Command) -> clap::Command {
    let is_empty = |name: &std::ffi::OsStr| std::env::var_os(name).is_some_and(|value| value.is_empty());
    let ids: Vec<clap::Id> = command
        .get_arguments()
        .filter(|arg| arg.get_env().is_some_and(is_empty))
        .map(|arg| arg.get_id().clone())
        .collect();
    for id in ids {
        command = command.mut_arg(id, |arg| arg.env(None));
    }
    let names: Vec<String> = command.get_subcommands().map(|sub| sub.get_name().to_owned()).collect();
    for name in names {
        command = command.mut_subcommand(name, ignore_empty_environment);
    }
    command
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Models(command) => return models::run(command),
        Command::Predict(args) => return predict::run(&args),
        _ => {}
    }
    let settings = StoreSettings::resolve(cli.store, cli.bigquery_endpoint, &cli.layout)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("toxcli-io")
        .build()
        .map_err(|error| anyhow::Error::new(error).context("starting the async runtime"))?;
    runtime.block_on(async move {
        match cli.command {
            Command::Import(args) => import::run(&settings, args).await,
            Command::Migrate(args) => migrate::run(&settings, &args).await,
            Command::Score(args) => score::run(&settings, args).await,
            Command::Export(args) => export::run(&settings, args).await,
            Command::Status => status::run(&settings).await,
            Command::Report(args) => report::run(&settings, args).await,
            Command::Verify(args) => verify::run(&settings, args).await,
            Command::Models(_) | Command::Predict(_) => Ok(()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
