//! SentencePiece model files (`sentencepiece.bpe.model` for XLM-R,
//! `spiece.model` for ALBERT) turned into the same tokenizer that
//! transformers 5 builds from them, so `multilingual`, `original-small` and
//! `unbiased-small` can be run from the files their Hugging Face folders ship,
//! without a converted `tokenizer.json`.
//!
//! The file is a protobuf `ModelProto` (sentencepiece_model.proto). Only the
//! fields the tokenizer needs are read: the pieces with their scores and
//! types, the trainer's model type, and the normalizer's precompiled
//! character map. The rest is skipped by wire type. A file that is not such
//! a message is an error naming the file and the byte where reading failed.
//!
//! What transformers 5 builds (`XLMRobertaTokenizer` / `AlbertTokenizer`,
//! both backed by the tokenizers library):
//! - XLM-R: the fairseq vocabulary `<s> <pad> </s> <unk>`, then the pieces
//!   from the fourth on, then `<mask>`; unknown id 3; the precompiled
//!   normalizer; whitespace split then `▁` metaspace, prepended; `<s> A </s>`.
//! - ALBERT: the pieces as they are; the unknown piece's id; `` and '' as `"`,
//!   NFKD and accents stripped (unless `keep_accents`), lowercase (if
//!   `do_lower_case`), the precompiled normalizer; the same pre-tokenizer;
//!   `[CLS] A [SEP]`.
//!
//! Settings come from a `tokenizer_config.json` beside the model when there
//! is one (`add_prefix_space` for both; `do_lower_case` and `keep_accents`
//! for ALBERT), with the defaults of xlm-roberta-base and albert-base-v2
//! otherwise.
//!
//! The SentencePiece library itself tokenizes a few texts differently (some
//! emoji sequences, Hangul, long repeated letters): Detoxify on transformers
//! 5 uses the tokenizers library, and this port follows it. The fixtures
//! record which texts differ (`reference.json`, `summary`).

use std::path::Path;

use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::{Lowercase, NFKD, NormalizerWrapper, Precompiled, Replace, Sequence, StripAccents};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

use crate::config::Architecture;
use crate::{Error, Result};

/// `SentencePiece.Type` values of sentencepiece_model.proto.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PieceType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Byte,
    Unused,
}

impl PieceType {
    fn from_proto(value: u64) -> Option<PieceType> {
        Some(match value {
            1 => PieceType::Normal,
            2 => PieceType::Unknown,
            3 => PieceType::Control,
            4 => PieceType::UserDefined,
            5 => PieceType::Unused,
            6 => PieceType::Byte,
            _ => return None,
        })
    }
}

/// One vocabulary entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Piece {
    pub piece: String,
    pub score: f32,
    pub kind: PieceType,
}

/// The parts of a `ModelProto` the tokenizer needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SentencePieceModel {
    pub pieces: Vec<Piece>,
    /// `TrainerSpec.model_type`: 1 unigram, 2 BPE, 3 word, 4 char.
    pub model_type: u64,
    /// `NormalizerSpec.precompiled_charsmap`, empty when there is none.
    pub precompiled_charsmap: Vec<u8>,
}

impl SentencePieceModel {
    /// Parses a serialized `ModelProto`. Errors name the byte offset.
    pub(crate) fn parse(bytes: &[u8]) -> std::result::Result<SentencePieceModel, String> {
        let mut model = SentencePieceModel { pieces: Vec::new(), model_type: 1, precompiled_charsmap: Vec::new() };
        let mut reader = Reader { bytes, pos: 0, base: 0 };
        while let Some((field, value)) = reader.field()? {
            match (field, value) {
                (1, Value::Bytes(piece, offset)) => model.pieces.push(parse_piece(piece, offset, model.pieces.len())?),
                (2, Value::Bytes(spec, offset)) => {
                    let mut spec = Reader { bytes: spec, pos: 0, base: offset };
                    while let Some((field, value)) = spec.field()? {
                        if let (3, Value::Varint(model_type)) = (field, value) {
                            model.model_type = model_type;
                        }
                    }
                }
                (3, Value::Bytes(spec, offset)) => {
                    let mut spec = Reader { bytes: spec, pos: 0, base: offset };
                    while let Some((field, value)) = spec.field()? {
                        if let (2, Value::Bytes(charsmap, _)) = (field, value) {
                            model.precompiled_charsmap = charsmap.to_vec();
                        }
                    }
                }
                (1..=3, _) => return Err(format!("field {field} of the model has the wrong wire type")),
                _ => {}
            }
        }
        if model.pieces.is_empty() {
            return Err("it holds no pieces".to_owned());
        }
        Ok(model)
    }
}

fn parse_piece(bytes: &[u8], offset: usize, index: usize) -> std::result::Result<Piece, String> {
    let mut reader = Reader { bytes, pos: 0, base: offset };
    let mut piece = Piece { piece: String::new(), score: 0.0, kind: PieceType::Normal };
    let mut seen_text = false;
    while let Some((field, value)) = reader.field()? {
        match (field, value) {
            (1, Value::Bytes(text, at)) => {
                piece.piece = String::from_utf8(text.to_vec())
                    .map_err(|_| format!("piece {index} (byte {at}) is not valid UTF-8"))?;
                seen_text = true;
            }
            (2, Value::Fixed32(bits)) => piece.score = f32::from_bits(bits),
            (3, Value::Varint(kind)) => {
                piece.kind =
                    PieceType::from_proto(kind).ok_or_else(|| format!("piece {index} has an unknown type {kind}"))?;
            }
            (1..=3, _) => return Err(format!("field {field} of piece {index} has the wrong wire type")),
            _ => {}
        }
    }
    if !seen_text {
        return Err(format!("piece {index} (byte {offset}) has no text"));
    }
    Ok(piece)
}

enum Value<'a> {
    Varint(u64),
    Fixed32(u32),
    /// The bytes and their offset in the file.
    Bytes(&'a [u8], usize),
    Fixed64,
}

/// A protobuf wire-format reader over one message.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Offset of `bytes` in the file, for error messages.
    base: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> std::result::Result<u64, String> {
        let start = self.base + self.pos;
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.bytes.get(self.pos) else {
                return Err(format!("truncated at byte {start}"));
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(format!("malformed number at byte {start}"))
    }

    fn take(&mut self, len: usize) -> std::result::Result<(&'a [u8], usize), String> {
        let start = self.pos;
        let end = start.checked_add(len).filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            return Err(format!("truncated at byte {}: a field of {len} bytes runs past the end", self.base + start));
        };
        self.pos = end;
        Ok((&self.bytes[start..end], self.base + start))
    }

    /// The next field, or `None` at the end of the message.
    fn field(&mut self) -> std::result::Result<Option<(u64, Value<'a>)>, String> {
        if self.pos == self.bytes.len() {
            return Ok(None);
        }
        let at = self.base + self.pos;
        let key = self.varint()?;
        let (field, wire_type) = (key >> 3, key & 7);
        if field == 0 {
            return Err(format!("not a protobuf message: field number 0 at byte {at}"));
        }
        let value = match wire_type {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed64
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| format!("field too long at byte {at}"))?;
                let (bytes, offset) = self.take(len)?;
                Value::Bytes(bytes, offset)
            }
            5 => {
                let (bytes, _) = self.take(4)?;
                Value::Fixed32(u32::from_le_bytes(bytes.try_into().expect("four bytes")))
            }
            other => return Err(format!("not a protobuf message: wire type {other} at byte {at}")),
        };
        Ok(Some((field, value)))
    }
}

/// The options transformers reads from `tokenizer_config.json`.
struct Options {
    do_lower_case: bool,
    keep_accents: bool,
    add_prefix_space: bool,
}

impl Options {
    fn beside(file: &Path) -> Result<Options> {
        let mut options = Options { do_lower_case: true, keep_accents: false, add_prefix_space: true };
        let config = file.with_file_name("tokenizer_config.json");
        let Ok(text) = std::fs::read_to_string(&config) else {
            return Ok(options);
        };
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|source| Error::Tokenizer {
            path: config.clone(),
            problem: "it is not valid JSON".to_owned(),
            source: Some(Box::new(source)),
        })?;
        let flag = |name: &str, slot: &mut bool| -> Result<()> {
            match value.get(name) {
                None | Some(serde_json::Value::Null) => Ok(()),
                Some(serde_json::Value::Bool(flag)) => {
                    *slot = *flag;
                    Ok(())
                }
                Some(other) => Err(Error::Tokenizer {
                    path: config.clone(),
                    problem: format!("{name} should be true or false, not {other}"),
                    source: None,
                }),
            }
        };
        flag("do_lower_case", &mut options.do_lower_case)?;
        flag("keep_accents", &mut options.keep_accents)?;
        flag("add_prefix_space", &mut options.add_prefix_space)?;
        Ok(options)
    }
}

/// Builds the tokenizer transformers 5 builds from a SentencePiece model file.
pub(crate) fn tokenizer(file: &Path, architecture: Architecture) -> Result<Tokenizer> {
    let problem = |problem: String| Error::Tokenizer { path: file.to_owned(), problem, source: None };
    let bytes = std::fs::read(file).map_err(|source| Error::io(file, source))?;
    let model = SentencePieceModel::parse(&bytes)
        .map_err(|reason| problem(format!("it is not a SentencePiece model: {reason}")))?;
    if model.model_type != 1 {
        let kind = match model.model_type {
            2 => "BPE",
            3 => "word",
            4 => "char",
            _ => "unknown-type",
        };
        return Err(problem(format!(
            "it is a {kind} SentencePiece model; the XLM-R and ALBERT tokenizers are unigram models"
        )));
    }
    let options = Options::beside(file)?;
    let (vocab, unk_id, cls, sep, specials) = match architecture {
        Architecture::XlmRoberta => {
            if model.pieces.len() < 3 {
                return Err(problem("it has fewer than the three pieces <unk> <s> </s> XLM-R starts with".to_owned()));
            }
            let mut vocab: Vec<(String, f64)> =
                ["<s>", "<pad>", "</s>", "<unk>"].iter().map(|token| ((*token).to_owned(), 0.0)).collect();
            vocab.extend(model.pieces[3..].iter().map(|piece| (piece.piece.clone(), f64::from(piece.score))));
            vocab.push(("<mask>".to_owned(), 0.0));
            (vocab, 3, "<s>", "</s>", vec!["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
        }
        Architecture::Albert => {
            let unk_id = model.pieces.iter().position(|piece| piece.kind == PieceType::Unknown).ok_or_else(|| {
                problem("it has no unknown piece (type UNKNOWN), which the unigram model needs".to_owned())
            })?;
            let vocab = model.pieces.iter().map(|piece| (piece.piece.clone(), f64::from(piece.score))).collect();
            (vocab, unk_id, "[CLS]", "[SEP]", vec!["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"])
        }
        Architecture::Bert | Architecture::Roberta => {
            return Err(problem(format!(
                "a SentencePiece model is not the tokenizer of a {} model",
                architecture.base_model()
            )));
        }
    };
    let tokenizers_error = |what: &str, source: tokenizers::Error| Error::Tokenizer {
        path: file.to_owned(),
        problem: what.to_owned(),
        source: Some(source),
    };
    let unigram = Unigram::from(vocab, Some(unk_id), false)
        .map_err(|source| tokenizers_error("cannot build the unigram model", source))?;
    let mut tokenizer = Tokenizer::new(unigram);

    let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
    if architecture == Architecture::Albert {
        for (pattern, content) in [("``", "\""), ("''", "\"")] {
            let replace = Replace::new(pattern, content)
                .map_err(|source| tokenizers_error("cannot build the quote normalizer", source))?;
            normalizers.push(replace.into());
        }
        if !options.keep_accents {
            normalizers.push(NFKD.into());
            normalizers.push(StripAccents.into());
        }
        if options.do_lower_case {
            normalizers.push(Lowercase.into());
        }
    }
    if !model.precompiled_charsmap.is_empty() {
        let precompiled = Precompiled::from(&model.precompiled_charsmap).map_err(|source| Error::Tokenizer {
            path: file.to_owned(),
            problem: "its precompiled character map is malformed".to_owned(),
            source: Some(Box::new(source)),
        })?;
        normalizers.push(precompiled.into());
    }
    if normalizers.len() == 1 {
        tokenizer.with_normalizer(normalizers.pop());
    } else if !normalizers.is_empty() {
        tokenizer.with_normalizer(Some(Sequence::new(normalizers)));
    }

    let prepend = if options.add_prefix_space { PrependScheme::Always } else { PrependScheme::Never };
    let pre_tokenizers: Vec<PreTokenizerWrapper> =
        vec![WhitespaceSplit.into(), Metaspace::new('▁', prepend, true).into()];
    tokenizer.with_pre_tokenizer(Some(PreTokenizerSequence::new(pre_tokenizers)));
    tokenizer.with_decoder(Some(DecoderWrapper::Metaspace(Metaspace::new('▁', prepend, true))));

    let (cls_id, sep_id) = (
        tokenizer.token_to_id(cls).ok_or_else(|| problem(format!("it has no {cls} piece")))?,
        tokenizer.token_to_id(sep).ok_or_else(|| problem(format!("it has no {sep} piece")))?,
    );
    let (single, pair) = match architecture {
        Architecture::XlmRoberta => ("<s> $A </s>", "<s> $A </s> </s> $B </s>"),
        _ => ("[CLS]:0 $A:0 [SEP]:0", "[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1"),
    };
    let mut template = TemplateProcessing::builder();
    template
        .try_single(single)
        .and_then(|builder| builder.try_pair(pair))
        .map_err(|reason| problem(format!("cannot build the template: {reason}")))?;
    template.special_tokens(vec![(cls.to_owned(), cls_id), (sep.to_owned(), sep_id)]);
    let template = template.build().map_err(|source| Error::Tokenizer {
        path: file.to_owned(),
        problem: "cannot build the template".to_owned(),
        source: Some(Box::new(source)),
    })?;
    tokenizer.with_post_processor(Some(template));

    // As transformers does: the named special tokens, the model's control
    // pieces (special) and user-defined pieces (not special) are matched in
    // the raw text before normalization.
    let mut added: Vec<AddedToken> = specials.iter().map(|token| AddedToken::from(*token, true)).collect();
    for piece in &model.pieces {
        match piece.kind {
            PieceType::Control if !specials.contains(&piece.piece.as_str()) => {
                added.push(AddedToken::from(piece.piece.clone(), true));
            }
            PieceType::UserDefined => added.push(AddedToken::from(piece.piece.clone(), false).normalized(false)),
            _ => {}
        }
    }
    let (special, plain): (Vec<AddedToken>, Vec<AddedToken>) = added.into_iter().partition(|token| token.special);
    tokenizer.add_special_tokens(&special);
    tokenizer.add_tokens(&plain);
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut value: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn bytes_field(field: u64, bytes: &[u8], out: &mut Vec<u8>) {
        varint(field << 3 | 2, out);
        varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }

    fn piece(text: &str, score: f32, kind: u64) -> Vec<u8> {
        let mut out = Vec::new();
        bytes_field(1, text.as_bytes(), &mut out);
        varint(2 << 3 | 5, &mut out);
        out.extend_from_slice(&score.to_le_bytes());
        varint(3 << 3, &mut out);
        varint(kind, &mut out);
        out
    }

    #[test]
    fn parses_pieces_and_specs_and_skips_unknown_fields() {
        let mut file = Vec::new();
        bytes_field(1, &piece("<unk>", 0.0, 2), &mut file);
        bytes_field(1, &piece("▁a", -1.5, 1), &mut file);
        let mut trainer = Vec::new();
        varint(3 << 3, &mut trainer);
        varint(2, &mut trainer);
        varint(40 << 3, &mut trainer); // unk_id, skipped
        varint(0, &mut trainer);
        bytes_field(2, &trainer, &mut file);
        let mut normalizer = Vec::new();
        bytes_field(1, b"nmt_nfkc", &mut normalizer);
        bytes_field(2, &[1, 2, 3], &mut normalizer);
        bytes_field(3, &normalizer, &mut file);
        varint(9 << 3 | 1, &mut file); // an unknown fixed64 field
        file.extend_from_slice(&[0; 8]);

        let model = SentencePieceModel::parse(&file).unwrap();
        assert_eq!(model.model_type, 2);
        assert_eq!(model.precompiled_charsmap, vec![1, 2, 3]);
        assert_eq!(model.pieces.len(), 2);
        assert_eq!(model.pieces[0], Piece { piece: "<unk>".to_owned(), score: 0.0, kind: PieceType::Unknown });
        assert_eq!(model.pieces[1], Piece { piece: "▁a".to_owned(), score: -1.5, kind: PieceType::Normal });
    }

    #[test]
    fn truncated_and_foreign_files_are_errors_naming_the_byte() {
        let mut file = Vec::new();
        bytes_field(1, &piece("▁a", -1.0, 1), &mut file);
        let truncated = &file[..file.len() - 3];
        let error = SentencePieceModel::parse(truncated).unwrap_err();
        assert!(error.contains("truncated at byte"), "{error}");

        let error = SentencePieceModel::parse(b"{\"model\": {\"type\": \"Unigram\"}}").unwrap_err();
        assert!(error.contains("byte"), "{error}");
        assert_eq!(SentencePieceModel::parse(&[]).unwrap_err(), "it holds no pieces");
    }
}
