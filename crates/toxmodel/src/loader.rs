//! Builds a [`SequenceClassifier`] from a Detoxify checkpoint.
//!
//! All checkpoint-name mapping lives here. `{p}` is the encoder prefix
//! (`bert` or `roberta`, from [`Architecture::prefix`]); `{i}` a layer index.
//!
//! | checkpoint key                                             | module path                          |
//! |------------------------------------------------------------|--------------------------------------|
//! | `{p}.embeddings.word_embeddings.weight`                    | `embeddings.word_embeddings`         |
//! | `{p}.embeddings.position_embeddings.weight`                | `embeddings.position_embeddings`     |
//! | `{p}.embeddings.token_type_embeddings.weight` (row 0)      | `embeddings.token_type_embedding`    |
//! | `{p}.embeddings.LayerNorm.{weight,bias}`                   | `embeddings.layer_norm`              |
//! | `{p}.encoder.layer.{i}.attention.self.{query,key,value}.*` | `layers[i].query_key_value` (fused)  |
//! | `{p}.encoder.layer.{i}.attention.output.dense.*`           | `layers[i].attention_output`         |
//! | `{p}.encoder.layer.{i}.attention.output.LayerNorm.*`       | `layers[i].attention_layer_norm`     |
//! | `{p}.encoder.layer.{i}.intermediate.dense.*`               | `layers[i].intermediate`             |
//! | `{p}.encoder.layer.{i}.output.dense.*`                     | `layers[i].output`                   |
//! | `{p}.encoder.layer.{i}.output.LayerNorm.*`                 | `layers[i].output_layer_norm`        |
//! | BERT `bert.pooler.dense.*`, RoBERTa `classifier.dense.*`   | `head.dense`                         |
//! | BERT `classifier.*`, RoBERTa `classifier.out_proj.*`       | `head.out_proj`                      |
//!
//! ALBERT (`{p}` = `albert`) has the same parts under other names, one set
//! per layer group (`{g}`), shared by the layers of the group:
//!
//! | checkpoint key                                                   | module path                    |
//! |------------------------------------------------------------------|--------------------------------|
//! | `albert.encoder.embedding_hidden_mapping_in.*`                   | `embedding_projection`         |
//! | `albert.encoder.albert_layer_groups.{g}.albert_layers.0.attention.{query,key,value}.*` | `layers[g].query_key_value` |
//! | `... .attention.dense.*`, `... .attention.LayerNorm.*`           | `layers[g].attention_output`, `attention_layer_norm` |
//! | `... .ffn.*`, `... .ffn_output.*`, `... .full_layer_layer_norm.*` | `layers[g].intermediate`, `output`, `output_layer_norm` |
//! | `albert.pooler.*`, `classifier.*`                                | `head.dense`, `head.out_proj`  |
//!
//! Buffers (`*.embeddings.position_ids`, `*.embeddings.token_type_ids`) are
//! ignored silently. Any other tensor left over is ignored too, as
//! transformers' `from_pretrained` ignores unexpected keys, and is reported
//! to the caller, who warns ([`crate::Detoxify::ignored_tensors`]). A tensor
//! the architecture needs and the file lacks is an error: transformers would
//! initialise it at random and Detoxify would score with it. PyTorch stores a Linear weight
//! as `[out, in]`; Burn's [`Linear`] wants `[in, out]`, so weights are
//! transposed here, once, at load time.

use std::collections::BTreeSet;

use burn::module::Param;
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{Device, Tensor, TensorData};

use crate::Result;
use crate::checkpoint::Checkpoint;
use crate::config::{Architecture, EncoderConfig};
use crate::model::{ClassificationHead, Embeddings, Layer, SequenceClassifier};

/// Buffers that some checkpoints carry and inference never reads.
const IGNORED_SUFFIXES: &[&str] = &[".embeddings.position_ids", ".embeddings.token_type_ids"];

/// A loaded classifier and the names of the checkpoint's tensors it did not
/// use (buffers excepted), sorted.
pub(crate) struct Loaded {
    pub(crate) classifier: SequenceClassifier,
    pub(crate) ignored_tensors: Vec<String>,
}

/// Reads every tensor of the architecture and checks its shape.
pub(crate) fn load_classifier(
    checkpoint: &Checkpoint,
    architecture: Architecture,
    config: &EncoderConfig,
    num_classes: usize,
    device: &Device,
) -> Result<Loaded> {
    let mut loader = Loader { checkpoint, config, device, used: BTreeSet::new() };
    let p = architecture.prefix();
    let hidden = config.hidden_size;
    let width = config.embedding_width();

    let word_embeddings =
        loader.param2(&format!("{p}.embeddings.word_embeddings.weight"), [config.vocab_size, width])?;
    let position_embeddings = loader
        .param2(&format!("{p}.embeddings.position_embeddings.weight"), [config.max_position_embeddings, width])?;
    let token_types =
        loader.read(&format!("{p}.embeddings.token_type_embeddings.weight"), &[config.type_vocab_size, width])?;
    let embeddings = Embeddings {
        word_embeddings,
        position_embeddings,
        // Detoxify always passes token type 0: keep that row only.
        token_type_embedding: loader.param1_from(token_types[..width].to_vec()),
        layer_norm: loader.layer_norm(&format!("{p}.embeddings.LayerNorm"), width)?,
    };

    let (embedding_projection, weight_sets) = match architecture {
        Architecture::Albert => (
            Some(loader.linear(&format!("{p}.encoder.embedding_hidden_mapping_in"), width, hidden)?),
            config.num_hidden_groups,
        ),
        _ => (None, config.num_hidden_layers),
    };
    let layers = (0..weight_sets)
        .map(|set_idx| {
            let names = LayerNames::new(architecture, set_idx);
            Ok(Layer {
                query_key_value: loader.fused_qkv(&names.query_key_value)?,
                attention_output: loader.linear(&names.attention_output, hidden, hidden)?,
                attention_layer_norm: loader.layer_norm(&names.attention_layer_norm, hidden)?,
                intermediate: loader.linear(&names.intermediate, hidden, config.intermediate_size)?,
                output: loader.linear(&names.output, config.intermediate_size, hidden)?,
                output_layer_norm: loader.layer_norm(&names.output_layer_norm, hidden)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;

    let (dense, out_proj) = match architecture {
        Architecture::Bert => ("bert.pooler.dense", "classifier"),
        Architecture::Albert => ("albert.pooler", "classifier"),
        Architecture::Roberta | Architecture::XlmRoberta => ("classifier.dense", "classifier.out_proj"),
    };
    let head = ClassificationHead {
        dense: loader.linear(dense, hidden, hidden)?,
        out_proj: loader.linear(out_proj, hidden, num_classes)?,
    };

    let ignored_tensors = loader.unused();
    Ok(Loaded { classifier: SequenceClassifier { embeddings, embedding_projection, layers, head }, ignored_tensors })
}

/// The checkpoint names of one encoder layer's parts (one weight set, for ALBERT).
struct LayerNames {
    /// Holds `query`, `key` and `value`.
    query_key_value: String,
    attention_output: String,
    attention_layer_norm: String,
    intermediate: String,
    output: String,
    output_layer_norm: String,
}

impl LayerNames {
    fn new(architecture: Architecture, index: usize) -> Self {
        let p = architecture.prefix();
        match architecture {
            Architecture::Albert => {
                let layer = format!("{p}.encoder.albert_layer_groups.{index}.albert_layers.0");
                LayerNames {
                    query_key_value: format!("{layer}.attention"),
                    attention_output: format!("{layer}.attention.dense"),
                    attention_layer_norm: format!("{layer}.attention.LayerNorm"),
                    intermediate: format!("{layer}.ffn"),
                    output: format!("{layer}.ffn_output"),
                    output_layer_norm: format!("{layer}.full_layer_layer_norm"),
                }
            }
            Architecture::Bert | Architecture::Roberta | Architecture::XlmRoberta => {
                let layer = format!("{p}.encoder.layer.{index}");
                LayerNames {
                    query_key_value: format!("{layer}.attention.self"),
                    attention_output: format!("{layer}.attention.output.dense"),
                    attention_layer_norm: format!("{layer}.attention.output.LayerNorm"),
                    intermediate: format!("{layer}.intermediate.dense"),
                    output: format!("{layer}.output.dense"),
                    output_layer_norm: format!("{layer}.output.LayerNorm"),
                }
            }
        }
    }
}

struct Loader<'a> {
    checkpoint: &'a Checkpoint,
    config: &'a EncoderConfig,
    device: &'a Device,
    used: BTreeSet<String>,
}

impl Loader<'_> {
    fn read(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let values = self.checkpoint.read_f32(name, shape)?;
        self.used.insert(name.to_owned());
        Ok(values)
    }

    fn param2(&mut self, name: &str, shape: [usize; 2]) -> Result<Param<Tensor<2>>> {
        let values = self.read(name, &shape)?;
        Ok(Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), self.device)))
    }

    fn param1(&mut self, name: &str, len: usize) -> Result<Param<Tensor<1>>> {
        let values = self.read(name, &[len])?;
        Ok(self.param1_from(values))
    }

    fn param1_from(&self, values: Vec<f32>) -> Param<Tensor<1>> {
        let len = values.len();
        Param::from_tensor(Tensor::from_data(TensorData::new(values, [len]), self.device))
    }

    /// A PyTorch `nn.Linear` (`{name}.weight` `[out, in]`, `{name}.bias` `[out]`).
    fn linear(&mut self, name: &str, d_input: usize, d_output: usize) -> Result<Linear> {
        let weight = self.read(&format!("{name}.weight"), &[d_output, d_input])?;
        let weight = transpose(&weight, d_output, d_input);
        Ok(Linear {
            weight: Param::from_tensor(Tensor::from_data(TensorData::new(weight, [d_input, d_output]), self.device)),
            bias: Some(self.param1(&format!("{name}.bias"), d_output)?),
        })
    }

    /// Query, key and value projections fused into one `[hidden, 3 * hidden]` Linear.
    fn fused_qkv(&mut self, name: &str) -> Result<Linear> {
        let hidden = self.config.hidden_size;
        let mut weight = vec![0.0f32; hidden * 3 * hidden];
        let mut bias = Vec::with_capacity(3 * hidden);
        for (part_idx, part) in ["query", "key", "value"].into_iter().enumerate() {
            let part_weight = self.read(&format!("{name}.{part}.weight"), &[hidden, hidden])?;
            // PyTorch row `out` holds the weights of output `out`: it becomes
            // column `part_idx * hidden + out` of the fused `[in, 3 * out]` matrix.
            transpose_into(&part_weight, hidden, hidden, &mut weight, 3 * hidden, part_idx * hidden);
            bias.extend(self.read(&format!("{name}.{part}.bias"), &[hidden])?);
        }
        Ok(Linear {
            weight: Param::from_tensor(Tensor::from_data(TensorData::new(weight, [hidden, 3 * hidden]), self.device)),
            bias: Some(self.param1_from(bias)),
        })
    }

    /// A LayerNorm with the configuration's epsilon. Old checkpoints name the
    /// parameters `gamma`/`beta` instead of `weight`/`bias`.
    fn layer_norm(&mut self, name: &str, hidden: usize) -> Result<LayerNorm> {
        let (scale, shift) = if self.checkpoint.tensor_names().any(|key| key == format!("{name}.gamma")) {
            ("gamma", "beta")
        } else {
            ("weight", "bias")
        };
        let mut layer_norm = LayerNormConfig::new(hidden).with_epsilon(self.config.layer_norm_eps).init(self.device);
        layer_norm.gamma = self.param1(&format!("{name}.{scale}"), hidden)?;
        layer_norm.beta = Some(self.param1(&format!("{name}.{shift}"), hidden)?);
        Ok(layer_norm)
    }

    /// The tensors not read, buffers excepted, sorted.
    fn unused(&self) -> Vec<String> {
        let mut unused: Vec<String> = self
            .checkpoint
            .tensor_names()
            .filter(|name| !self.used.contains(*name))
            .filter(|name| !IGNORED_SUFFIXES.iter().any(|suffix| name.ends_with(suffix)))
            .map(str::to_owned)
            .collect();
        unused.sort_unstable();
        unused
    }
}

/// Transposes a row-major `[rows, cols]` matrix.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut transposed = vec![0.0f32; values.len()];
    transpose_into(values, rows, cols, &mut transposed, rows, 0);
    transposed
}

/// Writes the transpose of a row-major `[rows, cols]` matrix into `target`,
/// whose rows are `target_width` long, starting at column `column_offset`:
/// `target[col][column_offset + row] = values[row][col]`. Works in tiles so
/// that both sides stay in cache (a naive loop took a second for bert-base).
fn transpose_into(
    values: &[f32],
    rows: usize,
    cols: usize,
    target: &mut [f32],
    target_width: usize,
    column_offset: usize,
) {
    const TILE: usize = 32;
    for row_start in (0..rows).step_by(TILE) {
        for col_start in (0..cols).step_by(TILE) {
            for row in row_start..(row_start + TILE).min(rows) {
                for col in col_start..(col_start + TILE).min(cols) {
                    target[col * target_width + column_offset + row] = values[row * cols + col];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::transpose;

    #[test]
    fn transpose_swaps_rows_and_columns() {
        assert_eq!(transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        // Across tile borders.
        let (rows, cols) = (70, 45);
        let values: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
        let transposed = transpose(&values, rows, cols);
        for row in 0..rows {
            for col in 0..cols {
                assert_eq!(transposed[col * rows + row], values[row * cols + col]);
            }
        }
    }
}
