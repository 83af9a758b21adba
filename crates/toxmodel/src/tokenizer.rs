//! Tokenizers loaded from local files, set up as Detoxify calls them:
//! special tokens added, truncated to the tokenizer's `model_max_length`
//! where its folder's `tokenizer_config.json` gives one, and always to the
//! model's positions (512 tokens in the released models; special tokens
//! included), no padding (the batcher pads).

use std::path::{Path, PathBuf};

use tokenizers::models::bpe::BPE;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{AddedToken, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::config::Architecture;
use crate::{Error, Result};

/// A tokenizer bound to one model: its padding id and length limit.
#[derive(Debug, Clone)]
pub struct TextTokenizer {
    tokenizer: Tokenizer,
    pad_token_id: u32,
    source: PathBuf,
}

impl TextTokenizer {
    /// Loads a tokenizer from `path`: a `tokenizer.json`, a BERT `vocab.txt`
    /// (any `*.txt`), a RoBERTa `vocab.json` (any `vocab*.json`, with
    /// `merges.txt` beside it), an XLM-R or ALBERT SentencePiece model (any
    /// `*.model`: `sentencepiece.bpe.model`, `spiece.model`), or a folder
    /// holding one of these (`tokenizer.json` preferred).
    ///
    /// The tokenizer must fit the model: its vocabulary size must equal
    /// `vocab_size`, and its special tokens must exist.
    pub fn from_path(
        path: &Path,
        architecture: Architecture,
        vocab_size: usize,
        max_length: usize,
    ) -> Result<TextTokenizer> {
        let file = resolve(path, architecture)?;
        let name = file.file_name().and_then(|name| name.to_str()).unwrap_or_default().to_owned();
        let mut tokenizer = if name.ends_with(".txt") {
            bert_wordpiece(&file)?
        } else if name.starts_with("vocab") && name.ends_with(".json") {
            roberta_bpe(&file)?
        } else if name.ends_with(".model") {
            crate::sentencepiece::tokenizer(&file, architecture)?
        } else {
            Tokenizer::from_file(&file)
                .map_err(|source| tokenizer_error(&file, "cannot read tokenizer.json", source))?
        };
        let pad_token = match architecture {
            Architecture::Bert => "[PAD]",
            Architecture::Roberta | Architecture::XlmRoberta | Architecture::Albert => "<pad>",
        };
        let pad_token_id = tokenizer.token_to_id(pad_token).ok_or_else(|| Error::Tokenizer {
            path: file.clone(),
            problem: format!(
                "it has no padding token {pad_token}: is it the tokenizer of a {} model?",
                architecture.base_model()
            ),
            source: None,
        })?;
        let tokenizer_vocab = tokenizer.get_vocab_size(true);
        if tokenizer_vocab != vocab_size {
            return Err(Error::Tokenizer {
                path: file,
                problem: format!(
                    "its vocabulary has {tokenizer_vocab} tokens but the model's has {vocab_size}: they do not belong together"
                ),
                source: None,
            });
        }
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|source| tokenizer_error(&file, "cannot set truncation", source))?;
        Ok(TextTokenizer { tokenizer, pad_token_id, source: file })
    }

    /// The padding token's id.
    pub fn pad_token_id(&self) -> u32 {
        self.pad_token_id
    }

    /// The file the tokenizer was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Token ids of one text, special tokens included, truncated.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode_fast(text, true)
            .map_err(|source| tokenizer_error(&self.source, "cannot tokenize a text", source))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Token ids of many texts, in order (uses the tokenizers crate's own
    /// parallelism).
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        let encodings = self
            .tokenizer
            .encode_batch_fast(texts.to_vec(), true)
            .map_err(|source| tokenizer_error(&self.source, "cannot tokenize a batch", source))?;
        Ok(encodings.into_iter().map(|encoding| encoding.get_ids().to_vec()).collect())
    }
}

fn resolve(path: &Path, architecture: Architecture) -> Result<PathBuf> {
    if !path.is_dir() {
        std::fs::metadata(path).map_err(|source| Error::io(path, source))?;
        return Ok(path.to_owned());
    }
    let fallback = match architecture {
        Architecture::Bert => "vocab.txt",
        Architecture::Roberta => "vocab.json",
        Architecture::XlmRoberta => "sentencepiece.bpe.model",
        Architecture::Albert => "spiece.model",
    };
    ["tokenizer.json", fallback].into_iter().map(|name| path.join(name)).find(|file| file.is_file()).ok_or_else(|| {
        Error::Tokenizer {
            path: path.to_owned(),
            problem: format!("the folder holds neither tokenizer.json nor {fallback}"),
            source: None,
        }
    })
}

/// The `model_max_length` of the `tokenizer_config.json` in the tokenizer
/// folder `path`, where transformers reads it (and where Detoxify's
/// `truncation=True` then cuts): `None` when `path` is a file, the folder has
/// no such file, or the key is absent or not an integer that fits (transformers
/// saves "no limit" as 10^30, which does not).
pub(crate) fn model_max_length(path: &Path) -> Result<Option<usize>> {
    let file = path.join("tokenizer_config.json");
    if !path.is_dir() || !file.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&file).map_err(|source| Error::io(&file, source))?;
    // transformers fails on a tokenizer_config.json it cannot parse, so
    // this does too, rather than scoring with a limit it may not have.
    let config: serde_json::Value = serde_json::from_str(&text).map_err(|source| Error::Tokenizer {
        path: file.clone(),
        problem: "it is not valid JSON".to_owned(),
        source: Some(Box::new(source)),
    })?;
    Ok(config
        .get("model_max_length")
        .and_then(serde_json::Value::as_u64)
        .and_then(|limit| usize::try_from(limit).ok())
        .filter(|&limit| limit > 0))
}

/// bert-base-uncased's tokenizer, as `BertTokenizerFast` builds it from `vocab.txt`.
fn bert_wordpiece(vocab: &Path) -> Result<Tokenizer> {
    let vocab_str = vocab.to_str().ok_or_else(|| Error::Tokenizer {
        path: vocab.to_owned(),
        problem: "the path is not valid UTF-8".to_owned(),
        source: None,
    })?;
    let model = WordPiece::from_file(vocab_str)
        .unk_token("[UNK]".to_owned())
        .continuing_subword_prefix("##".to_owned())
        .max_input_chars_per_word(100)
        .build()
        .map_err(|source| tokenizer_error(vocab, "cannot read the WordPiece vocabulary", source))?;
    let mut tokenizer = Tokenizer::new(model);
    let (cls, sep) = (special_token_id(&tokenizer, vocab, "[CLS]")?, special_token_id(&tokenizer, vocab, "[SEP]")?);
    tokenizer
        .with_normalizer(Some(BertNormalizer::new(true, true, None, true)))
        .with_pre_tokenizer(Some(BertPreTokenizer))
        .with_post_processor(Some(BertProcessing::new(("[SEP]".to_owned(), sep), ("[CLS]".to_owned(), cls))));
    // As in Hugging Face, the special tokens are matched in the raw text too.
    let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].map(|token| AddedToken::from(token, true));
    tokenizer.add_special_tokens(&specials);
    Ok(tokenizer)
}

/// roberta-base's tokenizer, as `RobertaTokenizerFast` builds it from
/// `vocab.json` and `merges.txt`.
fn roberta_bpe(vocab: &Path) -> Result<Tokenizer> {
    let merges = vocab.with_file_name("merges.txt");
    let as_str = |path: &Path| {
        path.to_str().map(str::to_owned).ok_or_else(|| Error::Tokenizer {
            path: path.to_owned(),
            problem: "the path is not valid UTF-8".to_owned(),
            source: None,
        })
    };
    if !merges.is_file() {
        return Err(Error::Tokenizer {
            path: vocab.to_owned(),
            problem: format!("{} is missing beside it", merges.display()),
            source: None,
        });
    }
    let model = BPE::from_file(&as_str(vocab)?, &as_str(&merges)?)
        .build()
        .map_err(|source| tokenizer_error(vocab, "cannot read the BPE vocabulary and merges", source))?;
    let mut tokenizer = Tokenizer::new(model);
    let (cls, sep) = (special_token_id(&tokenizer, vocab, "<s>")?, special_token_id(&tokenizer, vocab, "</s>")?);
    tokenizer
        .with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
        .with_post_processor(Some(
            RobertaProcessing::new(("</s>".to_owned(), sep), ("<s>".to_owned(), cls))
                .trim_offsets(true)
                .add_prefix_space(false),
        ))
        .with_decoder(Some(tokenizers::decoders::byte_level::ByteLevel::default()));
    // As in Hugging Face, the special tokens are matched in the raw text too;
    // `<mask>` also swallows the space before it.
    let mut specials: Vec<AddedToken> =
        ["<s>", "<pad>", "</s>", "<unk>"].into_iter().map(|token| AddedToken::from(token, true)).collect();
    specials.push(AddedToken::from("<mask>", true).lstrip(true));
    tokenizer.add_special_tokens(&specials);
    Ok(tokenizer)
}

/// The id of a special token the post-processor needs, or an error naming the vocabulary.
fn special_token_id(tokenizer: &Tokenizer, vocab: &Path, token: &str) -> Result<u32> {
    tokenizer.token_to_id(token).ok_or_else(|| Error::Tokenizer {
        path: vocab.to_owned(),
        problem: format!("the vocabulary has no {token} token"),
        source: None,
    })
}

fn tokenizer_error(path: &Path, problem: &str, source: tokenizers::Error) -> Error {
    Error::Tokenizer { path: path.to_owned(), problem: problem.to_owned(), source: Some(source) }
}
