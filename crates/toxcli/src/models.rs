//! `toxcli models list | download NAME | verify NAME`.

use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;

use anyhow::Context;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use toxmodel::registry::{self, MODELS};

use crate::model_args::model_cache;

/// The `models` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum ModelsCommand {
    /// List the released Detoxify models and whether each is cached.
    List,
    /// Download a model and its tokenizer into the cache, verifying its
    /// SHA-256 before it is kept.
    Download {
        /// The model: original, unbiased, multilingual, original-small, unbiased-small
        name: String,
    },
    /// Check a cached model's SHA-256 against the registry.
    Verify {
        /// The model
        name: String,
    },
}

/// Runs a `models` subcommand.
pub fn run(command: ModelsCommand) -> anyhow::Result<()> {
    let cache = model_cache();
    match command {
        ModelsCommand::List => {
            let mut out = crate::output::stdout();
            writeln!(out, "cache: {}", cache.root().display())?;
            if let Some(folder) = cache.torch_hub_checkpoints() {
                writeln!(out, "torch hub: {} (Detoxify's downloads, used in place)", folder.display())?;
            }
            writeln!(out, "{:<16}  {:<9}  {:<9}  {:<36}  base model", "model", "cached", "supported", "checkpoint")?;
            for model in MODELS {
                // A checkpoint Detoxify downloaded counts once it verifies
                // (as `score` and `predict` take it); its tokenizer comes on first use.
                let cached = if cache.is_cached(model) {
                    "yes"
                } else if !cache.checkpoint_path(model).is_file() && cache.torch_hub_checkpoint(model).is_some() {
                    "torch hub"
                } else {
                    "no"
                };
                writeln!(
                    out,
                    "{:<16}  {:<9}  {:<9}  {:<36}  {}",
                    model.name,
                    cached,
                    if model.architecture.is_some() { "yes" } else { "no" },
                    model.release_path,
                    model.base_model
                )?;
            }
            out.flush()?;
        }
        ModelsCommand::Download { name } => {
            let model = registry::find(&name)?;
            let bar = download_bar();
            let mut progress = |update: registry::Progress<'_>| {
                if let Some(bar) = &bar {
                    bar.set_length(update.total.unwrap_or(0));
                    bar.set_position(update.received);
                    bar.set_message(update.url.rsplit('/').next().unwrap_or_default().to_owned());
                }
                // Never stopped from here: Ctrl-C ends the process, and what
                // it leaves keeps its temporary name, never taken for a model.
                ControlFlow::Continue(())
            };
            eprintln!("downloading {} into {}", model.name, cache.model_dir(model).display());
            let path = cache.download(model, &mut progress).with_context(|| format!("downloading model {name}"))?;
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            let sha256 = cache.verify(model).with_context(|| format!("verifying model {name}"))?;
            let mut out = crate::output::stdout();
            writeln!(out, "{}  {}", sha256, path.display())?;
            out.flush()?;
        }
        ModelsCommand::Verify { name } => {
            let model = registry::find(&name)?;
            // The checkpoint `score` would use: the cache's, else Detoxify's
            // download in torch hub's folder.
            let hub = if cache.checkpoint_path(model).is_file() { None } else { cache.verify_torch_hub(model) };
            let (path, sha256) = match hub {
                Some(verified) => verified.with_context(|| format!("verifying model {name} in torch hub's folder"))?,
                None => {
                    let sha256 = cache.verify(model).with_context(|| format!("verifying model {name}"))?;
                    (cache.checkpoint_path(model), sha256)
                }
            };
            let mut out = crate::output::stdout();
            writeln!(out, "{}  {}  OK", sha256, path.display())?;
            out.flush()?;
        }
    }
    Ok(())
}

fn download_bar() -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}
