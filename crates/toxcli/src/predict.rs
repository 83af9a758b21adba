//! `toxcli predict`: score texts given on the command line, in a file or on
//! stdin, one JSON object per text on stdout, in input order.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

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
    let mut out = crate::output::stdout();
    let mut emit = |texts: &[String]| -> Result<()> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let scores =
            if args.all_outputs { loaded.model.predict_all_outputs(&refs)? } else { loaded.model.predict(&refs)? };
        for (text, scores) in texts.iter().zip(scores) {
            let mut line = String::from("{\"text\":");
            line.push_str(&serde_json::to_string(text)?);
            for (name, value) in scores.iter() {
                line.push(',');
                line.push_str(&serde_json::to_string(name)?);
                line.push(':');
                line.push_str(&serde_json::to_string(&value)?);
            }
            line.push('}');
            writeln!(out, "{line}").context("writing to stdout")?;
        }
        out.flush().context("writing to stdout")
    };

    if !args.texts.is_empty() {
        for chunk in args.texts.chunks(CHUNK) {
            emit(chunk)?;
        }
        return Ok(());
    }
    // Typed at a terminal: every line is scored as soon as it is entered.
    let interactive = args.input.is_none() && std::io::stdin().is_terminal();
    let (first_chunk, next_chunks) = if interactive { (1, 1) } else { (FIRST_CHUNK, CHUNK) };
    let (reader, source): (Box<dyn BufRead>, String) = match &args.input {
        Some(path) => (
            Box::new(std::io::BufReader::new(
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
            )),
            path.display().to_string(),
        ),
        None => (Box::new(std::io::stdin().lock()), "stdin".to_owned()),
    };
    let mut chunk = Vec::with_capacity(next_chunks);
    let mut chunk_len = first_chunk;
    for (line_idx, line) in reader.split(b'\n').enumerate() {
        let line = line.with_context(|| format!("reading {source}"))?;
        let line = String::from_utf8(line)
            .map_err(|_| anyhow::anyhow!("{source}:{}: the line is not valid UTF-8", line_idx + 1))?;
        chunk.push(line.strip_suffix('\r').map(str::to_owned).unwrap_or(line));
        if chunk.len() == chunk_len {
            emit(&chunk)?;
            chunk.clear();
            chunk_len = next_chunks;
        }
    }
    if !chunk.is_empty() {
        emit(&chunk)?;
    }
    Ok(())
}
