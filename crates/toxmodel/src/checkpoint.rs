//! Detoxify's checkpoint files, read exactly as Detoxify publishes them.
//!
//! A checkpoint is a `torch.save` zip archive holding a pickled dict with two
//! keys: `config` (the training JSON) and `state_dict` (Hugging Face parameter
//! names, no `model.` prefix). The pickle is interpreted by `pytorch-reader`,
//! which never executes anything from the file and checks every tensor's
//! declared size against its storage before reading it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use pytorch_reader::{DType, PickleValue, PytorchReader};
use sha2::{Digest, Sha256};

use crate::config::Architecture;
use crate::{Error, Result};

/// Detoxify renames three class names after loading; we do the same.
const CLASS_RENAMES: &[(&str, &str)] =
    &[("toxic", "toxicity"), ("severe_toxic", "severe_toxicity"), ("identity_hate", "identity_attack")];

/// What `config.arch.args` and `config.dataset.args.classes` declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The transformers class (`model_name`), parsed.
    pub architecture: Architecture,
    /// The Hugging Face base model (`model_type`), for example `bert-base-uncased`.
    pub base_model: String,
    /// The number of outputs (`num_classes`).
    pub num_classes: usize,
    /// The output names, in the checkpoint's order, with Detoxify's renaming
    /// applied (`toxic` becomes `toxicity` ...): `classes`, then
    /// `identity_classes` when present. As long as `num_classes`.
    pub class_names: Vec<String>,
    /// How many of `class_names` are the named classes Detoxify returns (the
    /// first ones); the rest are identity outputs.
    pub named_classes: usize,
}

/// An opened checkpoint: its declared info and its tensors, read lazily.
pub struct Checkpoint {
    path: PathBuf,
    info: CheckpointInfo,
    tensors: HashMap<String, pytorch_reader::Tensor>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("path", &self.path)
            .field("info", &self.info)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl Checkpoint {
    /// Opens a checkpoint: parses its pickle and config, without reading the
    /// tensor data yet.
    pub fn open(path: &Path) -> Result<Checkpoint> {
        // Distinguish a missing or unreadable file from a damaged one.
        std::fs::metadata(path).map_err(|source| Error::io(path, source))?;
        let config = PytorchReader::read_pickle_data(path, Some("config"))
            .map_err(|error| reader_error(path, "config", error))?;
        let info = parse_info(path, &config)?;
        let reader = PytorchReader::with_top_level_key(path, "state_dict")
            .map_err(|error| reader_error(path, "state_dict", error))?;
        if reader.is_empty() {
            return Err(Error::checkpoint(path, "state_dict holds no tensors"));
        }
        Ok(Checkpoint { path: path.to_owned(), info, tensors: reader.into_tensors() })
    }

    /// The checkpoint's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the checkpoint declares.
    pub fn info(&self) -> &CheckpointInfo {
        &self.info
    }

    /// The state_dict's tensor names.
    pub fn tensor_names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Reads one floating-point tensor as f32, checking its shape.
    ///
    /// float16, bfloat16 and float64 tensors are widened or narrowed to f32:
    /// the model computes in f32 whatever the file stores. (transformers 5
    /// builds the model in the stored type instead, so Detoxify scores a
    /// float16 file in float16; docs/models.md has the figures.)
    pub fn read_f32(&self, name: &str, expected: &[usize]) -> Result<Vec<f32>> {
        let tensor = self
            .tensors
            .get(name)
            .ok_or_else(|| Error::MissingTensor { path: self.path.clone(), name: name.to_owned() })?;
        let is_float = matches!(tensor.dtype(), DType::F32 | DType::F16 | DType::BF16 | DType::F64);
        if !is_float || tensor.shape() != expected {
            return Err(Error::TensorShape {
                path: self.path.clone(),
                name: name.to_owned(),
                found: tensor.shape().to_vec(),
                dtype: format!("{:?}", tensor.dtype()),
                expected: expected.to_vec(),
            });
        }
        let bytes = tensor.read().map_err(|source| Error::InvalidCheckpoint {
            path: self.path.clone(),
            problem: format!("cannot read tensor {name}"),
            source: Some(Box::new(source)),
        })?;
        // The reader returns native-endian bytes.
        Ok(match tensor.dtype() {
            DType::F16 => {
                bytes.chunks_exact(2).map(|pair| half::f16::from_ne_bytes([pair[0], pair[1]]).to_f32()).collect()
            }
            DType::BF16 => {
                bytes.chunks_exact(2).map(|pair| half::bf16::from_ne_bytes([pair[0], pair[1]]).to_f32()).collect()
            }
            DType::F64 => bytes
                .chunks_exact(8)
                .map(|chunk| f64::from_ne_bytes(chunk.try_into().expect("chunks_exact gives 8 bytes")) as f32)
                .collect(),
            _ => bytes
                .chunks_exact(4)
                .map(|chunk| f32::from_ne_bytes(chunk.try_into().expect("chunks_exact gives 4 bytes")))
                .collect(),
        })
    }
}

/// The SHA-256 of a file, in lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|source| Error::io(path, source))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|source| Error::io(path, source))?;
    Ok(hex::encode(hasher.finalize()))
}

/// The reader's error reading the top-level entry `key`, in Detoxify's terms.
fn reader_error(path: &Path, key: &str, error: pytorch_reader::PytorchError) -> Error {
    let problem = match &error {
        // The reader's own text (in the cause) lists the keys the file has.
        pytorch_reader::PytorchError::KeyNotFound(_) => {
            format!("it has no top-level `{key}` entry (a Detoxify checkpoint has `config` and `state_dict`)")
        }
        pytorch_reader::PytorchError::Zip(_) | pytorch_reader::PytorchError::InvalidFormat(_) => {
            "it is not a torch.save archive (or it is truncated)".to_owned()
        }
        pytorch_reader::PytorchError::Pickle(_) => "its pickle cannot be read".to_owned(),
        _ => "it cannot be read".to_owned(),
    };
    Error::InvalidCheckpoint { path: path.to_owned(), problem, source: Some(Box::new(error)) }
}

fn parse_info(path: &Path, config: &PickleValue) -> Result<CheckpointInfo> {
    let args = lookup(config, &["arch", "args"]).ok_or_else(|| Error::checkpoint(path, "config has no arch.args"))?;
    let text = |key: &str| match lookup(args, &[key]) {
        Some(PickleValue::String(value)) => Ok(value.clone()),
        _ => Err(Error::checkpoint(path, format!("config.arch.args.{key} is missing or not a string"))),
    };
    let model_name = text("model_name")?;
    let base_model = text("model_type")?;
    let architecture = Architecture::from_class_name(&model_name).ok_or_else(|| Error::UnknownArchitecture {
        path: path.to_owned(),
        model_name: model_name.clone(),
        supported: Architecture::ALL.map(Architecture::class_name).join(", "),
    })?;
    let num_classes = match lookup(args, &["num_classes"]) {
        Some(PickleValue::Int(n)) if *n > 0 => *n as usize,
        _ => {
            return Err(Error::checkpoint(path, "config.arch.args.num_classes is missing or not a positive integer"));
        }
    };
    let class_names = output_names(path, config, num_classes)?;
    Ok(CheckpointInfo {
        architecture,
        base_model,
        num_classes,
        class_names: class_names.names,
        named_classes: class_names.named,
    })
}

/// The names of a checkpoint's outputs, and how many of them Detoxify returns.
struct OutputNames {
    names: Vec<String>,
    named: usize,
}

/// Names the outputs as Detoxify does, and names the rest.
///
/// Detoxify reads `config.dataset.args.classes` (renamed), and `predict`
/// returns the first `len(classes)` outputs under those names; it never reads
/// `identity_classes`. So:
/// - `classes` must be a list of strings no longer than `num_classes`: a
///   longer one makes Detoxify's `predict` fail with an IndexError, and two
///   names equal after renaming make its dict silently drop an output;
/// - the outputs after them are named by `identity_classes` when that is a
///   list of distinct strings that fits them exactly (the released 16-output
///   models), and `output_<index>` otherwise (index counted from 0 over all
///   outputs), for `--all-outputs`.
fn output_names(path: &Path, config: &PickleValue, num_classes: usize) -> Result<OutputNames> {
    let classes_key = "config.dataset.args.classes";
    let mut names = match lookup(config, &["dataset", "args", "classes"]) {
        Some(PickleValue::List(items)) => items
            .iter()
            .map(|item| match item {
                PickleValue::String(name) => Ok(rename_class(name)),
                other => Err(Error::checkpoint(
                    path,
                    format!("{classes_key} holds {}, not a class name (a string)", describe(other)),
                )),
            })
            .collect::<Result<Vec<_>>>()?,
        Some(other) => {
            return Err(Error::checkpoint(
                path,
                format!("{classes_key} is {}, not a list of class names", describe(other)),
            ));
        }
        None => return Err(Error::checkpoint(path, format!("{classes_key} is missing"))),
    };
    if names.len() > num_classes {
        return Err(Error::checkpoint(
            path,
            format!(
                "{classes_key} lists {} class names but config.arch.args.num_classes is {num_classes}: \
                 Detoxify's predict fails on it (IndexError)",
                names.len()
            ),
        ));
    }
    if let Some(duplicate) = first_duplicate(&names) {
        return Err(Error::checkpoint(
            path,
            format!(
                "{classes_key} names two outputs {duplicate:?} (after Detoxify's renaming of toxic, severe_toxic \
                 and identity_hate): Detoxify would return only one of them"
            ),
        ));
    }
    let named = names.len();
    let identity: Option<Vec<String>> = match lookup(config, &["dataset", "args", "identity_classes"]) {
        Some(PickleValue::List(items)) => items
            .iter()
            .map(|item| match item {
                PickleValue::String(name) => Some(name.clone()),
                _ => None,
            })
            .collect(),
        _ => None,
    };
    match identity {
        Some(identity)
            if named + identity.len() == num_classes
                && first_duplicate(&[names.clone(), identity.clone()].concat()).is_none() =>
        {
            names.extend(identity);
        }
        _ => names.extend((named..num_classes).map(|index| format!("output_{index}"))),
    }
    Ok(OutputNames { names, named })
}

fn first_duplicate(names: &[String]) -> Option<&str> {
    let mut seen = std::collections::HashSet::new();
    names.iter().find(|name| !seen.insert(name.as_str())).map(String::as_str)
}

/// A short description of a pickled value, for error messages.
fn describe(value: &PickleValue) -> String {
    match value {
        PickleValue::String(text) => format!("the string {text:?}"),
        PickleValue::Int(number) => format!("the number {number}"),
        PickleValue::List(_) => "a list".to_owned(),
        PickleValue::Dict(_) => "a dict".to_owned(),
        _ => "a value of another type".to_owned(),
    }
}

fn lookup<'a>(mut value: &'a PickleValue, keys: &[&str]) -> Option<&'a PickleValue> {
    for key in keys {
        match value {
            PickleValue::Dict(map) => value = map.get(*key)?,
            _ => return None,
        }
    }
    Some(value)
}

/// Applies Detoxify's renaming of class names.
pub fn rename_class(name: &str) -> String {
    CLASS_RENAMES.iter().find(|(from, _)| *from == name).map_or(name, |(_, to)| to).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detoxify_renames_three_classes() {
        assert_eq!(rename_class("toxic"), "toxicity");
        assert_eq!(rename_class("severe_toxic"), "severe_toxicity");
        assert_eq!(rename_class("identity_hate"), "identity_attack");
        assert_eq!(rename_class("insult"), "insult");
    }
}
