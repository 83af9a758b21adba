//! How many texts go in one batch: at most the batch size, and, by the
//! length of the batch's longest text, what the memory allows.
//!
//! On the CPU the budget is [`TOKENS_PER_TEXT`] tokens per text of the batch
//! size, so that a batch's memory does not grow with its texts' length. On a
//! device (a GPU) it is what fits the device's memory: no buffer over the
//! largest allocation the runtime allows, and the activations of one batch
//! within the device's memory (its capacity where the runtime states it,
//! else [`ASSUMED_DEVICE_MEMORY`]), so long texts keep the full batch size
//! as long as they fit.

use crate::config::EncoderConfig;
use crate::device::Precision;

/// The token budget of a CPU batch, per text of the batch size: 64 tokens,
/// the 95th percentile of a tweet. A batch of 32 tweets fits; 32 texts of 512
/// tokens go in batches of 4.
pub const TOKENS_PER_TEXT: usize = 64;

/// On a device, a batch's sequences are padded to a multiple of this many
/// tokens: each new shape costs a device run its kernels' compilation and
/// autotuning (on lavapipe, 48 texts of 48 lengths one by one compiled 166
/// kernels and ran 65 autotunes unpadded, 107 and 46 padded: docs/gpu.md),
/// and matrix units want multiples of 8. The padding is masked, so the
/// scores do not change; the CPU pads to the longest text only.
pub const DEVICE_LENGTH_MULTIPLE: usize = 8;

/// The memory a device batch may use where the runtime states no capacity
/// (wgpu's WGSL build does not): 4 GiB, the smallest GPU worth scoring on.
pub const ASSUMED_DEVICE_MEMORY: u64 = 4 << 30;

/// What a device's runtime says of its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceMemory {
    /// The largest single buffer, in bytes (wgpu: the storage-binding and
    /// buffer-size limits; CUDA: the runtime's page size).
    pub max_allocation: u64,
    /// The memory the runtime stands behind, in bytes; `None` where it
    /// states none.
    pub capacity: Option<u64>,
}

impl std::fmt::Display for DeviceMemory {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "largest buffer {}, ", mebibytes(self.max_allocation))?;
        match self.capacity {
            Some(capacity) => write!(formatter, "capacity {}", mebibytes(capacity)),
            None => write!(formatter, "capacity not stated: {} assumed", mebibytes(ASSUMED_DEVICE_MEMORY)),
        }
    }
}

/// Bytes in MiB, or in GiB from 1 GiB up, one decimal where it is not whole.
fn mebibytes(bytes: u64) -> String {
    let (value, unit) = match bytes >= 1 << 30 {
        true => (bytes as f64 / f64::from(1u32 << 30), "GiB"),
        false => (bytes as f64 / f64::from(1u32 << 20), "MiB"),
    };
    if value.fract() == 0.0 { format!("{value:.0} {unit}") } else { format!("{value:.1} {unit}") }
}

/// The sizes the activations of one text scale with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ActivationShape {
    hidden: u64,
    heads: u64,
    intermediate: u64,
    /// Bytes per float: 4 in f32, 2 in f16.
    float_bytes: u64,
}

impl ActivationShape {
    /// The largest single tensor of one text of `len` tokens, in bytes: the
    /// attention scores (`heads × len × len`), the feed-forward's
    /// `len × intermediate`, or the fused `len × 3 hidden` projection.
    fn largest_tensor(&self, len: u64) -> u64 {
        let per_token = (self.heads * len).max(self.intermediate).max(3 * self.hidden);
        self.float_bytes * len * per_token
    }

    /// The activations of one text that can be alive at once during a layer,
    /// in bytes, over-counted: the residual stream, the projections, the
    /// context and the layer's outputs (about 9 hidden-wide tensors), two
    /// feed-forward-wide ones (before and after GELU), and the attention's
    /// scores and probabilities with a 4-byte mask beside them.
    fn live_bytes(&self, len: u64) -> u64 {
        let per_token = self.float_bytes * (9 * self.hidden + 2 * self.intermediate);
        let attention = (2 * self.float_bytes + 4) * self.heads * len * len;
        len * per_token + attention
    }
}

/// What a device's memory allows, for one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeviceFit {
    memory: DeviceMemory,
    shape: ActivationShape,
    /// The model's parameters on the device, in bytes.
    parameter_bytes: u64,
}

impl DeviceFit {
    pub(crate) fn new(memory: DeviceMemory, config: &EncoderConfig, precision: Precision, parameters: usize) -> Self {
        let float_bytes = match precision {
            Precision::F32 => 4,
            Precision::F16 => 2,
        };
        DeviceFit {
            memory,
            shape: ActivationShape {
                hidden: config.hidden_size as u64,
                heads: config.num_attention_heads as u64,
                intermediate: config.intermediate_size as u64,
                float_bytes,
            },
            parameter_bytes: float_bytes * parameters as u64,
        }
    }

    pub(crate) fn memory(&self) -> DeviceMemory {
        self.memory
    }

    /// The most texts of `len` tokens one batch may hold (at least one),
    /// `len` padded as a device batch pads it.
    fn max_texts(&self, len: usize) -> usize {
        let len = len.max(1).next_multiple_of(DEVICE_LENGTH_MULTIPLE) as u64;
        let by_allocation = self.memory.max_allocation / self.shape.largest_tensor(len).max(1);
        // Half of what the parameters leave: the allocator pools and pads,
        // and the next batch's inputs arrive while this one runs.
        let memory = self.memory.capacity.unwrap_or(ASSUMED_DEVICE_MEMORY);
        let workspace = memory.saturating_sub(self.parameter_bytes) / 2;
        let by_memory = workspace / self.shape.live_bytes(len).max(1);
        usize::try_from(by_allocation.min(by_memory)).unwrap_or(usize::MAX).max(1)
    }
}

/// How many texts one batch may hold, by the padded length of its longest
/// text: at most the batch size, and within the CPU's token budget or the
/// device's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchBudget {
    max_texts: usize,
    device: Option<DeviceFit>,
}

impl BatchBudget {
    /// The CPU's budget: [`TOKENS_PER_TEXT`] tokens per text of `batch_size`.
    pub fn cpu(batch_size: usize) -> Self {
        BatchBudget { max_texts: batch_size.max(1), device: None }
    }

    pub(crate) fn device(batch_size: usize, fit: DeviceFit) -> Self {
        BatchBudget { max_texts: batch_size.max(1), device: Some(fit) }
    }

    /// The batch size: the most texts of any length in one batch.
    pub fn max_texts(&self) -> usize {
        self.max_texts
    }

    /// The most texts of `len` tokens (padding included) one batch may hold:
    /// at least one, at most the batch size.
    pub fn texts_at(&self, len: usize) -> usize {
        let by_memory = match &self.device {
            None => self.max_texts.saturating_mul(TOKENS_PER_TEXT) / len.max(1),
            Some(fit) => fit.max_texts(len),
        };
        by_memory.clamp(1, self.max_texts)
    }

    /// Groups texts, given their token counts, into batches: sorted by
    /// length, so that texts of similar length share a batch and little
    /// compute goes to padding, each batch within [`texts_at`](Self::texts_at)
    /// its longest text. Returns the indexes of each batch.
    pub fn plan(&self, lengths: &[usize]) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..lengths.len()).collect();
        order.sort_by_key(|&idx| lengths[idx]);
        let mut batches: Vec<Vec<usize>> = Vec::new();
        let mut current: Vec<usize> = Vec::new();
        for idx in order {
            // Sorted ascending: this text is the longest of the batch so far.
            if !current.is_empty() && current.len() + 1 > self.texts_at(lengths[idx]) {
                batches.push(std::mem::take(&mut current));
            }
            current.push(idx);
        }
        if !current.is_empty() {
            batches.push(current);
        }
        batches
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// bert-base in f32, 110M parameters.
    fn bert_base(memory: DeviceMemory) -> DeviceFit {
        DeviceFit {
            memory,
            shape: ActivationShape { hidden: 768, heads: 12, intermediate: 3072, float_bytes: 4 },
            parameter_bytes: 4 * 110_000_000,
        }
    }

    const GIB: u64 = 1 << 30;

    proptest! {
        /// Every text in exactly one batch; batches sorted by length, each
        /// within the budget of its longest text (a text over the budget
        /// alone in its batch).
        #[test]
        fn batches_cover_every_text_once_within_the_budget(
            lengths in proptest::collection::vec(1usize..=512, 0..300),
            max_texts in 1usize..=64,
            device in proptest::option::of((1u64..=4 * GIB, proptest::option::of(1u64..=80 * GIB))),
        ) {
            let budget = match device {
                None => BatchBudget::cpu(max_texts),
                Some((max_allocation, capacity)) => {
                    BatchBudget::device(max_texts, bert_base(DeviceMemory { max_allocation, capacity }))
                }
            };
            let batches = budget.plan(&lengths);
            let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
            let mut previous = 0;
            for batch in &batches {
                prop_assert!(!batch.is_empty() && batch.len() <= max_texts);
                let longest = batch.iter().map(|&idx| lengths[idx]).max().unwrap_or_default();
                prop_assert!(batch.len() <= budget.texts_at(longest), "{:?}", batch);
                if device.is_none() {
                    prop_assert!(batch.len() == 1 || batch.len() * longest <= max_texts * TOKENS_PER_TEXT);
                }
                let shortest = batch.iter().map(|&idx| lengths[idx]).min().unwrap_or_default();
                prop_assert!(shortest >= previous);
                previous = longest;
            }
        }

        /// Longer texts never get more room per batch.
        #[test]
        fn the_budget_never_grows_with_the_length(
            len in 1usize..512,
            max_allocation in 1u64..=4 * GIB,
            capacity in proptest::option::of(1u64..=80 * GIB),
        ) {
            let fit = bert_base(DeviceMemory { max_allocation, capacity });
            prop_assert!(fit.max_texts(len + 1) <= fit.max_texts(len));
            let budget = BatchBudget::cpu(32);
            prop_assert!(budget.texts_at(len + 1) <= budget.texts_at(len));
        }
    }

    #[test]
    fn a_huge_batch_size_does_not_overflow_the_budget() {
        assert_eq!(BatchBudget::cpu(usize::MAX).texts_at(512), usize::MAX / 512);
        assert_eq!(BatchBudget::cpu(usize::MAX).plan(&[3, 1, 2]), vec![vec![1, 2, 0]]);
    }

    #[test]
    fn device_memory_reads_in_mib_and_gib() {
        let wgpu = DeviceMemory { max_allocation: 128 << 20, capacity: None };
        assert_eq!(wgpu.to_string(), "largest buffer 128 MiB, capacity not stated: 4 GiB assumed");
        let cuda = DeviceMemory { max_allocation: 3 * GIB / 2, capacity: Some(140_000_000_000) };
        assert_eq!(cuda.to_string(), "largest buffer 1.5 GiB, capacity 130.4 GiB");
    }

    #[test]
    fn tweets_fill_whole_cpu_batches_and_long_texts_come_in_small_ones() {
        let lengths = [vec![30; 64], vec![512; 8]].concat();
        let sizes: Vec<usize> = BatchBudget::cpu(32).plan(&lengths).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![32, 32, 4, 4]);
    }

    #[test]
    fn a_gpu_keeps_the_batch_size_for_long_texts_while_they_fit() {
        let lengths = [vec![30; 64], vec![512; 64]].concat();
        // A 4 GiB buffer limit and 80 GB: 64 texts of 512 tokens need 3.2 GB
        // of buffers at most, and fit.
        let big =
            BatchBudget::device(64, bert_base(DeviceMemory { max_allocation: 4 * GIB, capacity: Some(80 * GIB) }));
        assert_eq!(big.plan(&lengths).iter().map(Vec::len).collect::<Vec<_>>(), vec![64, 64]);
        // A 128 MiB buffer limit: the attention scores of one 512-token text
        // take 12.6 MB, so 10 fit in a buffer.
        let small = DeviceMemory { max_allocation: 128 << 20, capacity: Some(80 * GIB) };
        let budget = BatchBudget::device(64, bert_base(small));
        assert_eq!(budget.texts_at(512), 10);
        assert_eq!(budget.texts_at(30), 64);
        // 4 GiB with no capacity stated: the assumed 4 GiB, less the
        // parameters, halved: 1.9 GB over 64 MB of live activations per
        // 512-token text.
        let unstated = BatchBudget::device(64, bert_base(DeviceMemory { max_allocation: 4 * GIB, capacity: None }));
        assert_eq!(unstated.texts_at(512), 29);
        // A text too long for the device still gets a batch of its own.
        let tiny = BatchBudget::device(64, bert_base(DeviceMemory { max_allocation: 1 << 20, capacity: Some(GIB) }));
        assert_eq!(tiny.texts_at(512), 1);
        assert_eq!(tiny.plan(&[512, 512]).len(), 2);
    }
}
