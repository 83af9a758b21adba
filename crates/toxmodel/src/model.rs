//! The encoder and classification head, in Burn.
//!
//! Ported from Hugging Face transformers
//! (`src/transformers/models/bert/modeling_bert.py` and
//! `src/transformers/models/roberta/modeling_roberta.py`); module names mirror
//! the Hugging Face classes so the two can be read side by side. BERT and
//! RoBERTa share the encoder; they differ in position ids (computed by the
//! batcher), LayerNorm epsilon (from the config) and the names of the head's
//! two dense layers (mapped by the loader). Both heads compute
//! `out(tanh(dense(hidden[:, 0])))`: BERT's pooler + classifier, RoBERTa's
//! `RobertaClassificationHead`.
//!
//! The model is backend-agnostic: Burn 0.22 picks the backend from the
//! [`Device`], so the same code runs on `flex`, `ndarray` or a GPU backend.

use burn::module::{Module, ModuleMapper, Param};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::activation::{gelu, relu, sigmoid};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Device, FloatDType, Int, Tensor, TensorData};

use crate::batch::TokenBatch;
use crate::config::{Activation, EncoderConfig};

/// `BertEmbeddings` / `RobertaEmbeddings`: word + position + token type, then LayerNorm.
#[derive(Module, Debug)]
pub struct Embeddings {
    /// `word_embeddings.weight`, `[vocab_size, hidden]`.
    pub word_embeddings: Param<Tensor<2>>,
    /// `position_embeddings.weight`, `[max_position_embeddings, hidden]`.
    pub position_embeddings: Param<Tensor<2>>,
    /// Row 0 of `token_type_embeddings.weight`, `[hidden]`: Detoxify always
    /// passes token type 0.
    pub token_type_embedding: Param<Tensor<1>>,
    /// `LayerNorm`.
    pub layer_norm: LayerNorm,
}

/// `BertLayer` (ALBERT's `AlbertLayer` has the same parts): self-attention
/// and feed-forward, each followed by a residual LayerNorm.
#[derive(Module, Debug)]
pub struct Layer {
    /// `attention.self.{query,key,value}` fused into one `[hidden, 3 * hidden]` projection.
    pub query_key_value: Linear,
    /// `attention.output.dense`.
    pub attention_output: Linear,
    /// `attention.output.LayerNorm`.
    pub attention_layer_norm: LayerNorm,
    /// `intermediate.dense`.
    pub intermediate: Linear,
    /// `output.dense`.
    pub output: Linear,
    /// `output.LayerNorm`.
    pub output_layer_norm: LayerNorm,
}

/// The pooler/classifier pair: `out(tanh(dense(first token)))`.
#[derive(Module, Debug)]
pub struct ClassificationHead {
    /// BERT `bert.pooler.dense`; ALBERT `albert.pooler`; RoBERTa `classifier.dense`.
    pub dense: Linear,
    /// BERT and ALBERT `classifier`; RoBERTa `classifier.out_proj`.
    pub out_proj: Linear,
}

/// The whole sequence classifier.
#[derive(Module, Debug)]
pub struct SequenceClassifier {
    /// The embeddings.
    pub embeddings: Embeddings,
    /// ALBERT's `encoder.embedding_hidden_mapping_in`: embedding width to hidden width.
    pub embedding_projection: Option<Linear>,
    /// The distinct weight sets of the encoder layers: one per layer for
    /// BERT and RoBERTa; for ALBERT one per group (one in every released
    /// model), each run by `num_hidden_layers / groups` consecutive layers.
    pub layers: Vec<Layer>,
    /// The head.
    pub head: ClassificationHead,
}

/// Hyper-parameters the forward pass needs besides the weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ForwardSettings {
    pub num_attention_heads: usize,
    pub num_hidden_layers: usize,
    pub activation: Activation,
    /// Whether GELU is computed on the host ([`gelu_erf`], [`gelu_tanh`]):
    /// on the CPU backends in f32, where it is faster than Burn's; elsewhere
    /// Burn's own tensor ops keep the activations on the device.
    pub host_activation: bool,
}

impl ForwardSettings {
    pub(crate) fn new(config: &EncoderConfig, host_activation: bool) -> Self {
        Self {
            num_attention_heads: config.num_attention_heads,
            num_hidden_layers: config.num_hidden_layers,
            activation: config.hidden_act,
            host_activation,
        }
    }
}

/// Casts every float parameter of a module to `dtype` (f16 on a GPU): the
/// whole forward pass then runs in that type.
///
/// Measured on the fixture models (lavapipe): all-f16 drifts 2.7e-3 (bert)
/// to 8.5e-3 (albert-original) from f32; keeping LayerNorm, softmax and GELU in f32 with only the
/// matrix products in f16 (autocast's split) drifted more, 4.2e-3, and
/// PyTorch's own f16 drifts as much on these models (docs/gpu.md), so the
/// simpler all-f16 pass is kept; f16 is parsed only by `f16-experiment`
/// builds.
pub(crate) fn cast_floats<M: Module>(module: M, dtype: FloatDType) -> M {
    struct Cast(FloatDType);
    impl ModuleMapper for Cast {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let dtype = self.0;
            param.map(|tensor| tensor.cast(dtype))
        }
    }
    module.map(&mut Cast(dtype))
}

impl SequenceClassifier {
    /// Runs the model on a batch and returns the sigmoid of the logits,
    /// `[batch, num_classes]`, row-major.
    pub(crate) fn forward(&self, settings: ForwardSettings, batch: &TokenBatch, device: &Device) -> Vec<f32> {
        let [batch_size, seq_len] = [batch.batch_size(), batch.seq_len()];
        let ids =
            Tensor::<1, Int>::from_data(TensorData::new(batch.input_ids().to_vec(), [batch_size * seq_len]), device);
        let positions =
            Tensor::<1, Int>::from_data(TensorData::new(batch.position_ids().to_vec(), [batch_size * seq_len]), device);
        // `true` marks the padded keys that attention must ignore.
        let padding =
            Tensor::<2, Bool>::from_data(TensorData::new(batch.padding_mask().to_vec(), [batch_size, seq_len]), device);

        let mut hidden = self.embeddings.forward(ids, positions, batch_size, seq_len);
        let heads = settings.num_attention_heads;
        let key_mask: Tensor<4, Bool> =
            padding.reshape([batch_size, 1, 1, seq_len]).expand([batch_size, heads, seq_len, seq_len]);

        if let Some(projection) = &self.embedding_projection {
            hidden = linear(projection, hidden);
        }
        let num_layers = settings.num_hidden_layers;
        // ALBERT's AlbertTransformer: layer `i` runs weight group `i / (layers / groups)`.
        let layers_per_group = num_layers / self.layers.len().max(1);
        for layer_idx in 0..num_layers {
            let layer = &self.layers[layer_idx / layers_per_group.max(1)];
            // Only the first token feeds the head, so the last layer computes
            // its queries and feed-forward for that token alone.
            let first_token_only = layer_idx + 1 == num_layers;
            hidden = layer.forward(hidden, key_mask.clone(), settings, first_token_only);
        }
        let [_, _, hidden_size] = hidden.dims();
        let first_token = hidden.narrow(1, 0, 1).reshape([batch_size, hidden_size]);
        let logits = self.head.forward(first_token);
        // One transfer per batch; in f16 the values widen to f32 on the way.
        sigmoid(logits).into_data().iter::<f32>().collect()
    }
}

impl Embeddings {
    fn forward(&self, ids: Tensor<1, Int>, positions: Tensor<1, Int>, batch_size: usize, seq_len: usize) -> Tensor<3> {
        let words = self.word_embeddings.val().select(0, ids);
        let positions = self.position_embeddings.val().select(0, positions);
        let token_type = self.token_type_embedding.val().unsqueeze_dim::<2>(0);
        let hidden_size = token_type.dims()[1];
        let sum = words + positions + token_type;
        self.layer_norm.forward(sum.reshape([batch_size, seq_len, hidden_size]))
    }
}

impl Layer {
    fn forward(
        &self,
        hidden: Tensor<3>,
        key_mask: Tensor<4, Bool>,
        settings: ForwardSettings,
        first_token_only: bool,
    ) -> Tensor<3> {
        let [batch_size, seq_len, hidden_size] = hidden.dims();
        let heads = settings.num_attention_heads;
        let head_size = hidden_size / heads;

        let qkv = linear(&self.query_key_value, hidden.clone());
        let split = |tensor: Tensor<3>, len: usize| tensor.reshape([batch_size, len, heads, head_size]).swap_dims(1, 2);
        let (query, residual, query_len, key_mask) = if first_token_only {
            let query = qkv.clone().narrow(1, 0, 1).narrow(2, 0, hidden_size);
            let mask = key_mask.narrow(2, 0, 1);
            (query, hidden.narrow(1, 0, 1), 1, mask)
        } else {
            (qkv.clone().narrow(2, 0, hidden_size), hidden, seq_len, key_mask)
        };
        let key = qkv.clone().narrow(2, hidden_size, hidden_size);
        let value = qkv.narrow(2, 2 * hidden_size, hidden_size);

        let context = attention(
            split(query, query_len),
            split(key, seq_len),
            split(value, seq_len),
            Some(key_mask),
            None,
            AttentionModuleOptions::default(),
        );
        let context = context.swap_dims(1, 2).reshape([batch_size, query_len, hidden_size]);
        let attended = self.attention_layer_norm.forward(linear(&self.attention_output, context) + residual);

        let intermediate = linear(&self.intermediate, attended.clone());
        let intermediate = match (settings.activation, settings.host_activation) {
            (Activation::Gelu, true) => gelu_erf(intermediate),
            (Activation::GeluNew, true) => gelu_tanh(intermediate),
            (Activation::Gelu, false) => gelu(intermediate),
            (Activation::GeluNew, false) => gelu_new(intermediate),
            (Activation::Relu, _) => relu(intermediate),
        };
        self.output_layer_norm.forward(linear(&self.output, intermediate) + attended)
    }
}

/// A Linear layer on `[batch, tokens, features]`, as one matrix product over
/// all `batch * tokens` rows.
///
/// Burn 0.22's `Linear` on a 3-d input keeps a batched product (one small
/// product per sequence, the weight packed again for each) whenever the
/// tokens per sequence are a multiple of 32, and folds the rows into one
/// product otherwise: with bert-base, 32-token batches ran at half the speed
/// of 24- or 40-token ones. Folding here makes every length take the fast
/// path.
fn linear(layer: &Linear, input: Tensor<3>) -> Tensor<3> {
    let [batch_size, tokens, features] = input.dims();
    let output = layer.forward(input.reshape([batch_size * tokens, features]));
    let out_features = output.dims()[1];
    output.reshape([batch_size, tokens, out_features])
}

impl ClassificationHead {
    fn forward(&self, first_token: Tensor<2>) -> Tensor<2> {
        self.out_proj.forward(self.dense.forward(first_token).tanh())
    }
}

/// Exact (erf) GELU, `x / 2 * (1 + erf(x / sqrt(2)))`, computed on the host.
///
/// Burn's CPU backends call libm's scalar `erff` per element, which took a
/// tenth of bert-base's time here. This erf is the rational approximation
/// Eigen and XLA use for f32 (`generic_fast_erf_float`, clamped to [-4, 4],
/// error within a few ulp), which the compiler vectorizes.
fn gelu_erf<const D: usize>(tensor: Tensor<D>) -> Tensor<D> {
    map_in_place(tensor, |value| 0.5 * value * (1.0 + erf(value * std::f32::consts::FRAC_1_SQRT_2)))
}

/// ALBERT's `gelu_new`, `x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))`,
/// computed on the host in the same order as transformers' `NewGELUActivation`
/// (`x^3` as `x * x * x`, as PyTorch's `pow(x, 3.0)` does).
fn gelu_tanh<const D: usize>(tensor: Tensor<D>) -> Tensor<D> {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    map_in_place(tensor, |x| 0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044715 * (x * x * x))).tanh()))
}

/// `gelu_new` in Burn's tensor ops (on a device), in the same order as
/// [`gelu_tanh`].
fn gelu_new<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
    let cube = x.clone() * x.clone() * x.clone();
    let inner = (x.clone() + cube * 0.044715) * SQRT_2_OVER_PI;
    x * 0.5 * (inner.tanh() + 1.0)
}

/// Applies `f` to every element on the host, in the tensor's own buffer
/// (no copy into a `Vec` and back: that copy was 1% of bert-base's time).
#[inline(always)]
fn map_in_place<const D: usize>(tensor: Tensor<D>, f: impl Fn(f32) -> f32) -> Tensor<D> {
    let device = tensor.device();
    let mut data = tensor.into_data();
    for value in
        data.as_mut_slice::<f32>().expect("host activations run only in f32 (ForwardSettings::host_activation)")
    {
        *value = f(*value);
    }
    Tensor::from_data(data, &device)
}

/// f32 erf: Eigen's `generic_fast_erf_float`.
#[inline(always)]
fn erf(x: f32) -> f32 {
    const ALPHA: [f32; 7] = [
        -2.726_142_3e-10,
        2.770_681_4e-8,
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906_3e-4,
        -2.954_600_5e-3,
        -1.609_603_3e-2,
    ];
    const BETA: [f32; 5] = [-1.456_607_2e-5, -2.133_740_6e-4, -1.682_827e-3, -7.373_329_3e-3, -1.426_474e-2];
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = ALPHA[0];
    for coefficient in &ALPHA[1..] {
        p = p * x2 + coefficient;
    }
    let mut q = BETA[0];
    for coefficient in &BETA[1..] {
        q = q * x2 + coefficient;
    }
    x * p / q
}

#[cfg(test)]
mod tests {
    use super::erf;

    #[test]
    fn fast_erf_matches_the_exact_one() {
        // Within 5e-7 of the exact erf everywhere (measured 4.2e-7, a few f32 ulp
        // near 1.0): far below the 1e-5 parity tolerance on probabilities.
        let mut worst = 0.0f32;
        for step in -80_000..=80_000 {
            let x = step as f32 / 10_000.0;
            let exact = libm_erf(x as f64) as f32;
            worst = worst.max((erf(x) - exact).abs());
        }
        assert!(worst < 5e-7, "max error {worst}");
    }

    /// erf in f64 by its Taylor series (|x| small) or continued fraction
    /// complement, precise to ~1e-12 on [-8, 8]: an independent reference.
    fn libm_erf(x: f64) -> f64 {
        if x.abs() < 3.0 {
            let mut sum = 0.0;
            let mut term = x;
            let mut n = 0.0;
            while term.abs() > 1e-17 {
                sum += term / (2.0 * n + 1.0);
                n += 1.0;
                term *= -x * x / n;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc by Lentz's continued fraction.
            let a = x.abs();
            let mut fraction = 0.0;
            for k in (1..200).rev() {
                fraction = (k as f64 / 2.0) / (a + fraction);
            }
            let erfc = (-a * a).exp() / (std::f64::consts::PI.sqrt() * (a + fraction));
            (1.0 - erfc) * x.signum()
        }
    }
}
