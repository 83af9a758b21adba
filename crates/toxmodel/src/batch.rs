//! Padded batches of token ids, validated once so that `forward` cannot fail.

use crate::config::{Architecture, EncoderConfig};
use crate::{Error, Result};

/// What the batcher needs to know about the model to build valid batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpec {
    /// The architecture (it decides the position ids).
    pub architecture: Architecture,
    /// The model's vocabulary size: every id must be below it.
    pub vocab_size: usize,
    /// The padding token id.
    pub pad_token_id: u32,
    /// The longest sequence the model takes, special tokens included.
    pub max_sequence_length: usize,
}

impl BatchSpec {
    pub(crate) fn new(architecture: Architecture, config: &EncoderConfig, pad_token_id: u32) -> Self {
        Self {
            architecture,
            vocab_size: config.vocab_size,
            pad_token_id,
            max_sequence_length: config.max_sequence_length(architecture),
        }
    }
}

/// A right-padded batch of token id sequences, checked against the model:
/// non-empty sequences, ids inside the vocabulary, lengths within the model's
/// positions. Only [`TokenBatch::new`] makes one, so the forward pass never
/// sees invalid input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    batch_size: usize,
    seq_len: usize,
    input_ids: Vec<i64>,
    position_ids: Vec<i64>,
    padding_mask: Vec<bool>,
}

impl TokenBatch {
    /// Pads `sequences` (each already holding its special tokens) to the
    /// longest one and computes the position ids of the architecture.
    pub fn new<S: AsRef<[u32]>>(spec: &BatchSpec, sequences: &[S]) -> Result<TokenBatch> {
        TokenBatch::padded(spec, sequences, 1)
    }

    /// As [`new`](Self::new), with the longest length rounded up to a
    /// multiple of `multiple` (within the model's positions): fewer distinct
    /// shapes for a device to compile kernels for. Padding is masked, so
    /// the outputs do not change.
    pub fn padded<S: AsRef<[u32]>>(spec: &BatchSpec, sequences: &[S], multiple: usize) -> Result<TokenBatch> {
        if sequences.is_empty() {
            return Err(Error::InvalidBatch { problem: "the batch holds no sequence".to_owned() });
        }
        let longest = sequences.iter().map(|sequence| sequence.as_ref().len()).max().unwrap_or(0);
        for (text_idx, sequence) in sequences.iter().enumerate() {
            let sequence = sequence.as_ref();
            if sequence.is_empty() {
                return Err(Error::InvalidBatch { problem: format!("sequence {text_idx} is empty") });
            }
            if sequence.len() > spec.max_sequence_length {
                return Err(Error::InvalidBatch {
                    problem: format!(
                        "sequence {text_idx} has {} tokens, the model takes at most {}",
                        sequence.len(),
                        spec.max_sequence_length
                    ),
                });
            }
            if let Some(id) = sequence.iter().find(|&&id| id as usize >= spec.vocab_size) {
                return Err(Error::InvalidBatch {
                    problem: format!(
                        "sequence {text_idx} holds token id {id}, outside the vocabulary of {}",
                        spec.vocab_size
                    ),
                });
            }
        }

        // Checked above: no sequence is longer than the model takes.
        let seq_len = longest.next_multiple_of(multiple.max(1)).min(spec.max_sequence_length).max(longest);
        let batch_size = sequences.len();
        let pad = i64::from(spec.pad_token_id);
        let mut input_ids = Vec::with_capacity(batch_size * seq_len);
        let mut position_ids = Vec::with_capacity(batch_size * seq_len);
        let mut padding_mask = Vec::with_capacity(batch_size * seq_len);
        for sequence in sequences {
            let sequence = sequence.as_ref();
            for token_idx in 0..seq_len {
                let real = token_idx < sequence.len();
                input_ids.push(if real { i64::from(sequence[token_idx]) } else { pad });
                padding_mask.push(!real);
                position_ids.push(if spec.architecture.padding_aware_positions() {
                    // RoBERTa's create_position_ids_from_input_ids: real tokens
                    // count up from padding_idx + 1, padding sits at padding_idx.
                    if real { pad + 1 + token_idx as i64 } else { pad }
                } else {
                    token_idx as i64
                });
            }
        }
        Ok(TokenBatch { batch_size, seq_len, input_ids, position_ids, padding_mask })
    }

    /// Number of sequences.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Length of the longest sequence (all are padded to it).
    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// `[batch_size * seq_len]` token ids, row-major.
    pub fn input_ids(&self) -> &[i64] {
        &self.input_ids
    }

    /// `[batch_size * seq_len]` position ids.
    pub fn position_ids(&self) -> &[i64] {
        &self.position_ids
    }

    /// `[batch_size * seq_len]`, `true` at padding.
    pub fn padding_mask(&self) -> &[bool] {
        &self.padding_mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(architecture: Architecture) -> BatchSpec {
        BatchSpec { architecture, vocab_size: 100, pad_token_id: 1, max_sequence_length: 4 }
    }

    #[test]
    fn roberta_positions_skip_padding() {
        let batch = TokenBatch::new(&spec(Architecture::Roberta), &[vec![0, 5, 2], vec![0, 2]]).unwrap();
        assert_eq!(batch.input_ids(), &[0, 5, 2, 0, 2, 1]);
        assert_eq!(batch.position_ids(), &[2, 3, 4, 2, 3, 1]);
        assert_eq!(batch.padding_mask(), &[false, false, false, false, false, true]);
    }

    #[test]
    fn bert_positions_count_from_zero() {
        let batch = TokenBatch::new(&spec(Architecture::Bert), &[vec![9, 2], vec![9, 3, 4]]).unwrap();
        assert_eq!(batch.position_ids(), &[0, 1, 2, 0, 1, 2]);
        assert_eq!(batch.input_ids(), &[9, 2, 1, 9, 3, 4]);
    }

    #[test]
    fn a_device_batch_pads_to_a_multiple_within_the_models_positions() {
        let spec = spec(Architecture::Roberta);
        let batch = TokenBatch::padded(&spec, &[vec![0, 5, 2]], 2).unwrap();
        assert_eq!(batch.seq_len(), 4);
        assert_eq!(batch.input_ids(), &[0, 5, 2, 1]);
        assert_eq!(batch.position_ids(), &[2, 3, 4, 1]);
        assert_eq!(batch.padding_mask(), &[false, false, false, true]);
        // Never past the model's positions (4 here), nor past a multiple.
        assert_eq!(TokenBatch::padded(&spec, &[vec![0, 5, 2]], 8).unwrap().seq_len(), 4);
        assert_eq!(TokenBatch::padded(&spec, &[vec![0, 2]], 2).unwrap().seq_len(), 2);
        assert_eq!(TokenBatch::padded(&spec, &[vec![0, 2]], 0).unwrap().seq_len(), 2);
        assert_eq!(TokenBatch::new(&spec, &[vec![0, 5, 2]]).unwrap().seq_len(), 3);
    }

    #[test]
    fn invalid_sequences_are_rejected_with_their_index() {
        let spec = spec(Architecture::Bert);
        for (sequences, needle) in [
            (vec![vec![1u32, 2], vec![]], "sequence 1 is empty"),
            (vec![vec![1u32, 2, 3, 4, 5]], "5 tokens"),
            (vec![vec![1u32, 100]], "token id 100"),
        ] {
            let error = TokenBatch::new(&spec, &sequences).unwrap_err().to_string();
            assert!(error.contains(needle), "{error}");
        }
        assert!(TokenBatch::new::<Vec<u32>>(&spec, &[]).is_err());
    }
}
