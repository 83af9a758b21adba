//! `toxcli predict`: score texts given on the command line, in a file or on
//! stdin, one JSON object per text on stdout, in input order.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use toxmodel::PreparedTexts;

use crate::exit::InputError;
use crate::model_args::ModelArgs;

/// How many texts are read before they are scored; the model sorts them by
/// length and batches inside. The first chunk is a few texts
/// ([`FIRST_CHUNK`]), so the first scores appear as soon as the model is
/// loaded.
const CHUNK: usize = 2048;
/// Texts in the first chunk: one small batch, scored in a fraction of a second.
const FIRST_CHUNK: usize = 8;

/// `toxcli predict` arguments.
#[derive(Args, Debug)]
pub struct PredictArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Texts per model batch.
    #[arg(long, env = "BATCH_SIZE", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub batch_size: u64,
    /// Print every output, the identity outputs of the 16-output models included.
    #[arg(long)]
    pub all_outputs: bool,
    /// Read texts from this file, one per line (default: the TEXT arguments, else stdin).
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Texts to score.
    #[arg(value_name = "TEXT")]
    pub texts: Vec<String>,
}

pub fn run(args: &PredictArgs) -> Result<()> {
    let loaded = args.model.load(args.batch_size as usize)?;
    let model = &loaded.model;
    let names = if args.all_outputs { model.all_class_names() } else { model.class_names() };
    // Scores go to stdout; which GPU computes them is said on stderr.
    if let Some(identity) = model.device_identity() {
        eprintln!("predicting on {} ({identity}) in {}", model.device(), model.precision());
    }
    let mut out = crate::output::stdout();
    // Texts are read and tokenized on one thread (the tokenizer runs on
    // Rayon's pool) while the model scores the chunk before: on a GPU the
    // device never waits for the CPU's part. One chunk in flight at a time
    // keeps memory bounded and the output in input order.
    std::thread::scope(|scope| -> Result<()> {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Result<(Vec<String>, PreparedTexts)>>(1);
        scope.spawn(move || {
            let prepare = |chunk: Vec<String>| -> Result<(Vec<String>, PreparedTexts)> {
                let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                let prepared = model.prepare(&refs)?;
                Ok((chunk, prepared))
            };
            let mut send = |chunk: Result<Vec<String>>| sender.send(chunk.and_then(prepare)).is_ok();
            read_chunks(args, &mut send);
        });
        for prepared in receiver {
            let (texts, prepared) = prepared?;
            for (text, row) in texts.iter().zip(model.predict_prepared(&prepared)) {
                let values = if args.all_outputs { row } else { model.named_scores(&row) };
                let mut line = String::from("{\"text\":");
                line.push_str(&serde_json::to_string(text)?);
                for (name, value) in names.iter().zip(values) {
                    line.push(',');
                    line.push_str(&serde_json::to_string(name)?);
                    line.push(':');
                    line.push_str(&serde_json::to_string(&value)?);
                }
                line.push('}');
                writeln!(out, "{line}").context("writing to stdout")?;
            }
            out.flush().context("writing to stdout")?;
        }
        Ok(())
    })
}

/// Reads the texts in chunks and hands each to `send` (an error ends the
/// reading); stops early when `send` returns false (the scorer stopped).
fn read_chunks(args: &PredictArgs, send: &mut dyn FnMut(Result<Vec<String>>) -> bool) {
    if !args.texts.is_empty() {
        for chunk in args.texts.chunks(CHUNK) {
            if !send(Ok(chunk.to_vec())) {
                return;
            }
        }
        return;
    }
    // Typed at a terminal: every line is scored as soon as it is entered.
    let interactive = args.input.is_none() && std::io::stdin().is_terminal();
    let (first_chunk, next_chunks) = if interactive { (1, 1) } else { (FIRST_CHUNK, CHUNK) };
    let (reader, source): (Box<dyn BufRead>, String) = match &args.input {
        Some(path) => match std::fs::File::open(path) {
            Ok(file) => (Box::new(std::io::BufReader::new(file)), path.display().to_string()),
            Err(error) => {
                send(Err(input_error(format!("{}: cannot open it", path.display()), Some(error))));
                return;
            }
        },
        None => (Box::new(std::io::stdin().lock()), "stdin".to_owned()),
    };
    let mut chunk = Vec::with_capacity(next_chunks);
    let mut chunk_len = first_chunk;
    for (line_idx, line) in reader.split(b'\n').enumerate() {
        let line = match line {
            Ok(line) => String::from_utf8(line)
                .map_err(|_| input_error(format!("{source}:{}: the line is not valid UTF-8", line_idx + 1), None)),
            Err(error) => Err(input_error(format!("{source}:{}: cannot read it", line_idx + 1), Some(error))),
        };
        let line = match line {
            Ok(line) => line,
            Err(error) => {
                // The good lines before the bad one are scored first.
                if !chunk.is_empty() && !send(Ok(std::mem::take(&mut chunk))) {
                    return;
                }
                send(Err(error));
                return;
            }
        };
        chunk.push(line.strip_suffix('\r').map(str::to_owned).unwrap_or(line));
        if chunk.len() == chunk_len {
            if !send(Ok(std::mem::take(&mut chunk))) {
                return;
            }
            chunk_len = next_chunks;
        }
    }
    if !chunk.is_empty() {
        send(Ok(chunk));
    }
}

/// A problem with the texts' file or stdin (exit code 3).
fn input_error(message: String, source: Option<std::io::Error>) -> anyhow::Error {
    InputError { message, source }.into()
}
