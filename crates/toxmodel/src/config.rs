//! Architectures and their Hugging Face configurations.
//!
//! Detoxify's checkpoints do not carry the architecture's hyper-parameters:
//! Detoxify takes them from the base model's Hugging Face `config.json`
//! (`huggingface_config_path` when offline). This module holds the built-in
//! base configs of the five released models, and reads a `config.json` that
//! overrides them, which also serves any other shape of the same architecture.

use std::path::Path;

use serde::Deserialize;

use crate::{Error, Result};

/// The transformers classes this crate implements, chosen from the
/// checkpoint's declared `config.arch.args.model_name`, never guessed from
/// tensor shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// `BertForSequenceClassification`: pooler (dense + tanh on `[CLS]`), then the classifier.
    Bert,
    /// `RobertaForSequenceClassification`: head = dense + tanh + out_proj on `<s>`,
    /// padding-aware position ids starting at `pad_token_id + 1`.
    Roberta,
    /// `XLMRobertaForSequenceClassification`: RoBERTa with the XLM-R vocabulary.
    XlmRoberta,
    /// `AlbertForSequenceClassification`: factorised embeddings projected to
    /// the hidden width, layers sharing one set of weights, `gelu_new`,
    /// pooler then classifier.
    Albert,
}

impl Architecture {
    /// All supported architectures.
    pub const ALL: [Architecture; 4] =
        [Architecture::Bert, Architecture::Roberta, Architecture::XlmRoberta, Architecture::Albert];

    /// The transformers class name, as `config.arch.args.model_name` spells it.
    pub fn class_name(self) -> &'static str {
        match self {
            Architecture::Bert => "BertForSequenceClassification",
            Architecture::Roberta => "RobertaForSequenceClassification",
            Architecture::XlmRoberta => "XLMRobertaForSequenceClassification",
            Architecture::Albert => "AlbertForSequenceClassification",
        }
    }

    /// Parses a transformers class name.
    pub fn from_class_name(name: &str) -> Option<Architecture> {
        Architecture::ALL.into_iter().find(|arch| arch.class_name() == name)
    }

    /// The prefix of the encoder's parameters in the state_dict.
    pub fn prefix(self) -> &'static str {
        match self {
            Architecture::Bert => "bert",
            Architecture::Roberta | Architecture::XlmRoberta => "roberta",
            Architecture::Albert => "albert",
        }
    }

    /// Whether position ids follow RoBERTa's padding-aware numbering.
    pub fn padding_aware_positions(self) -> bool {
        matches!(self, Architecture::Roberta | Architecture::XlmRoberta)
    }

    /// The Hugging Face base model whose config is built in.
    pub fn base_model(self) -> &'static str {
        match self {
            Architecture::Bert => "bert-base-uncased",
            Architecture::Roberta => "roberta-base",
            Architecture::XlmRoberta => "xlm-roberta-base",
            Architecture::Albert => "albert-base-v2",
        }
    }
}

/// The activation of the feed-forward block (`hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Exact GELU, with erf (BERT, RoBERTa, XLM-R).
    Gelu,
    /// The tanh approximation of GELU (ALBERT's `gelu_new`).
    GeluNew,
    /// ReLU.
    Relu,
}

/// The subset of a Hugging Face `config.json` the encoder needs, with
/// Hugging Face's field names so that the file deserializes directly.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EncoderConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Number of transformer layers.
    pub num_hidden_layers: usize,
    /// Number of attention heads.
    pub num_attention_heads: usize,
    /// Width of the feed-forward block.
    pub intermediate_size: usize,
    /// Feed-forward activation.
    pub hidden_act: Activation,
    /// Number of position embeddings.
    pub max_position_embeddings: usize,
    /// Number of token types.
    pub type_vocab_size: usize,
    /// LayerNorm epsilon: 1e-12 for BERT, 1e-5 for RoBERTa.
    pub layer_norm_eps: f64,
    /// The padding token id (RoBERTa numbers positions after it).
    #[serde(default)]
    pub pad_token_id: usize,
    /// ALBERT: the width of the factorised embeddings, projected to
    /// `hidden_size` (absent for the others: the embeddings are `hidden_size` wide).
    #[serde(default)]
    pub embedding_size: Option<usize>,
    /// ALBERT: the number of distinct weight sets the layers share (1 for albert-base-v2).
    #[serde(default = "one")]
    pub num_hidden_groups: usize,
    /// ALBERT: layers inside a group (only 1 is supported, as every released ALBERT has).
    #[serde(default = "one")]
    pub inner_group_num: usize,
}

fn one() -> usize {
    1
}

impl EncoderConfig {
    /// The built-in config of an architecture's base model.
    pub fn builtin(arch: Architecture) -> EncoderConfig {
        match arch {
            Architecture::Bert => EncoderConfig {
                vocab_size: 30522,
                hidden_size: 768,
                num_hidden_layers: 12,
                num_attention_heads: 12,
                intermediate_size: 3072,
                hidden_act: Activation::Gelu,
                max_position_embeddings: 512,
                type_vocab_size: 2,
                layer_norm_eps: 1e-12,
                pad_token_id: 0,
                embedding_size: None,
                num_hidden_groups: 1,
                inner_group_num: 1,
            },
            Architecture::Roberta => EncoderConfig {
                vocab_size: 50265,
                hidden_size: 768,
                num_hidden_layers: 12,
                num_attention_heads: 12,
                intermediate_size: 3072,
                hidden_act: Activation::Gelu,
                max_position_embeddings: 514,
                type_vocab_size: 1,
                layer_norm_eps: 1e-5,
                pad_token_id: 1,
                embedding_size: None,
                num_hidden_groups: 1,
                inner_group_num: 1,
            },
            Architecture::XlmRoberta => {
                EncoderConfig { vocab_size: 250002, ..EncoderConfig::builtin(Architecture::Roberta) }
            }
            Architecture::Albert => EncoderConfig {
                vocab_size: 30000,
                hidden_size: 768,
                num_hidden_layers: 12,
                num_attention_heads: 12,
                intermediate_size: 3072,
                hidden_act: Activation::GeluNew,
                max_position_embeddings: 512,
                type_vocab_size: 2,
                layer_norm_eps: 1e-12,
                pad_token_id: 0,
                embedding_size: Some(128),
                num_hidden_groups: 1,
                inner_group_num: 1,
            },
        }
    }

    /// Reads a Hugging Face `config.json`.
    pub fn from_file(path: &Path) -> Result<EncoderConfig> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::io(path, source))?;
        let config: EncoderConfig = serde_json::from_str(&text).map_err(|error| Error::InvalidConfig {
            source_name: path.display().to_string(),
            problem: error.to_string(),
        })?;
        config.validate(&path.display().to_string())?;
        Ok(config)
    }

    /// The width of the embeddings (before ALBERT's projection).
    pub fn embedding_width(&self) -> usize {
        self.embedding_size.unwrap_or(self.hidden_size)
    }

    /// The width of one attention head.
    pub fn head_size(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// The longest sequence the model takes, special tokens included.
    pub fn max_sequence_length(&self, arch: Architecture) -> usize {
        if arch.padding_aware_positions() {
            // Positions start after the padding index, so fewer fit.
            self.max_position_embeddings.saturating_sub(self.pad_token_id + 1)
        } else {
            self.max_position_embeddings
        }
    }

    pub(crate) fn validate(&self, source_name: &str) -> Result<()> {
        let problem = if self.num_attention_heads == 0 || !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            Some(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ))
        } else if self.vocab_size == 0 || self.hidden_size == 0 || self.intermediate_size == 0 {
            Some("vocab_size, hidden_size and intermediate_size must be positive".to_owned())
        } else if self.embedding_size == Some(0) {
            Some("embedding_size must be positive".to_owned())
        } else if self.inner_group_num != 1 {
            Some(format!(
                "inner_group_num {} is not supported (only 1, as in every released ALBERT)",
                self.inner_group_num
            ))
        } else if self.num_hidden_groups == 0 || !self.num_hidden_layers.is_multiple_of(self.num_hidden_groups) {
            Some(format!(
                "num_hidden_layers {} is not a multiple of num_hidden_groups {}",
                self.num_hidden_layers, self.num_hidden_groups
            ))
        } else if self.type_vocab_size == 0 {
            Some("type_vocab_size must be positive".to_owned())
        } else if self.max_position_embeddings < 2 {
            Some("max_position_embeddings must be at least 2".to_owned())
        } else if self.layer_norm_eps.is_nan() || self.layer_norm_eps <= 0.0 {
            Some("layer_norm_eps must be positive".to_owned())
        } else {
            None
        };
        match problem {
            Some(problem) => Err(Error::InvalidConfig { source_name: source_name.to_owned(), problem }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_configs_match_detoxify_reference() {
        let bert = EncoderConfig::builtin(Architecture::Bert);
        assert_eq!(bert.layer_norm_eps, 1e-12);
        assert_eq!(bert.max_sequence_length(Architecture::Bert), 512);
        let roberta = EncoderConfig::builtin(Architecture::Roberta);
        assert_eq!(roberta.layer_norm_eps, 1e-5);
        assert_eq!(roberta.max_sequence_length(Architecture::Roberta), 512);
        assert_eq!(EncoderConfig::builtin(Architecture::XlmRoberta).vocab_size, 250002);
    }

    #[test]
    fn class_names_round_trip() {
        for arch in Architecture::ALL {
            assert_eq!(Architecture::from_class_name(arch.class_name()), Some(arch));
        }
        assert_eq!(Architecture::from_class_name("GPT2ForSequenceClassification"), None);
    }

    #[test]
    fn inconsistent_config_is_rejected() {
        let config = EncoderConfig { num_attention_heads: 5, ..EncoderConfig::builtin(Architecture::Bert) };
        let error = config.validate("test").unwrap_err();
        assert!(matches!(error, Error::InvalidConfig { .. }), "{error}");
    }
}
