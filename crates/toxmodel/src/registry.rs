//! The five released Detoxify models, and a cache that downloads and
//! verifies them.
//!
//! Each checkpoint's file name carries the first 8 hex digits of its SHA-256;
//! Detoxify never checks them, we do, before a file is used. A download goes
//! to a temporary file beside its destination, is hashed while it is written,
//! flushed to disk, and only then renamed into place: a partial or damaged
//! download never counts as a model.
//!
//! The tokenizer and base config files come from the Hugging Face base
//! models, as Detoxify takes them. This crate reads no environment variables:
//! the caller chooses the cache folder and whether downloads are allowed.
//!
//! A checkpoint Detoxify already downloaded (into torch hub's
//! `$TORCH_HOME/hub/checkpoints`, under the release's file name) is used in
//! place when the cache lacks it and its SHA-256 verifies: users moving from
//! Detoxify need not download 400 MB again. It is only read, never copied,
//! moved or modified.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::config::Architecture;
use crate::{Error, Result};

/// Where Detoxify publishes its checkpoints.
pub const RELEASE_BASE_URL: &str = "https://github.com/unitaryai/detoxify/releases/download";
/// Where the Hugging Face base models' tokenizer files live.
pub const HUGGING_FACE_BASE_URL: &str = "https://huggingface.co";

/// A released Detoxify model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisteredModel {
    /// Detoxify's name for it (`original`, `unbiased` ...).
    pub name: &'static str,
    /// The release tag and file name, relative to [`RELEASE_BASE_URL`].
    pub release_path: &'static str,
    /// The first hex digits of the file's SHA-256, as its name carries them.
    pub sha256_prefix: &'static str,
    /// The transformers class it declares.
    pub class_name: &'static str,
    /// The Hugging Face base model its tokenizer comes from.
    pub base_model: &'static str,
    /// The tokenizer files to fetch from the base model, relative to
    /// `{HUGGING_FACE_BASE_URL}/{base_model}/resolve/main/`.
    pub tokenizer_files: &'static [&'static str],
    /// The architecture, when this build implements it.
    pub architecture: Option<Architecture>,
}

/// The five models, in Detoxify's README order.
pub const MODELS: &[RegisteredModel] = &[
    RegisteredModel {
        name: "original",
        release_path: "v0.1-alpha/toxic_original-c1212f89.ckpt",
        sha256_prefix: "c1212f89",
        class_name: "BertForSequenceClassification",
        base_model: "bert-base-uncased",
        tokenizer_files: &["vocab.txt"],
        architecture: Some(Architecture::Bert),
    },
    RegisteredModel {
        name: "unbiased",
        release_path: "v0.3-alpha/toxic_debiased-c7548aa0.ckpt",
        sha256_prefix: "c7548aa0",
        class_name: "RobertaForSequenceClassification",
        base_model: "roberta-base",
        tokenizer_files: &["vocab.json", "merges.txt"],
        architecture: Some(Architecture::Roberta),
    },
    RegisteredModel {
        name: "multilingual",
        release_path: "v0.4-alpha/multilingual_debiased-0b549669.ckpt",
        sha256_prefix: "0b549669",
        class_name: "XLMRobertaForSequenceClassification",
        base_model: "xlm-roberta-base",
        // The SentencePiece model, built into the tokenizer transformers 5
        // builds (and Detoxify then runs); see `sentencepiece.rs`.
        tokenizer_files: &["sentencepiece.bpe.model"],
        architecture: Some(Architecture::XlmRoberta),
    },
    RegisteredModel {
        name: "original-small",
        release_path: "v0.1.2/original-albert-0e1d6498.ckpt",
        sha256_prefix: "0e1d6498",
        class_name: "AlbertForSequenceClassification",
        base_model: "albert-base-v2",
        tokenizer_files: &["spiece.model"],
        architecture: Some(Architecture::Albert),
    },
    RegisteredModel {
        name: "unbiased-small",
        release_path: "v0.1.2/unbiased-albert-c8519128.ckpt",
        sha256_prefix: "c8519128",
        class_name: "AlbertForSequenceClassification",
        base_model: "albert-base-v2",
        tokenizer_files: &["spiece.model"],
        architecture: Some(Architecture::Albert),
    },
];

/// Finds a model by name.
pub fn find(name: &str) -> Result<&'static RegisteredModel> {
    MODELS.iter().find(|model| model.name == name).ok_or_else(|| Error::UnknownModel {
        name: name.to_owned(),
        known: MODELS.iter().map(|model| model.name).collect::<Vec<_>>().join(", "),
    })
}

impl RegisteredModel {
    /// The checkpoint's file name.
    pub fn file_name(&self) -> &'static str {
        self.release_path.rsplit('/').next().unwrap_or(self.release_path)
    }

    /// The checkpoint's download address under `base_url`.
    pub fn url(&self, base_url: &str) -> String {
        format!("{}/{}", base_url.trim_end_matches('/'), self.release_path)
    }

    /// Checks a checkpoint's SHA-256 (as [`sha256_file`](crate::sha256_file)
    /// gives it, or [`Detoxify::load_hashed`](crate::Detoxify::load_hashed))
    /// against the prefix this model's file name carries.
    pub fn check_sha256(&self, path: &Path, actual: &str) -> Result<()> {
        check_prefix(path, self.sha256_prefix, actual)
    }
}

/// The default cache folder, shared by the CLI and the Python package:
/// `TOXSCORE_CACHE_DIR`, else `$XDG_CACHE_HOME/toxscore`, else
/// `~/.cache/toxscore` (`HOME`), else `.toxscore-cache`. `env` reads an
/// environment variable (`std::env::var_os` in a binary): this crate reads
/// none itself.
pub fn default_cache_dir(env: impl Fn(&str) -> Option<OsString>) -> PathBuf {
    let from_env = |name: &str| env(name).filter(|value| !value.is_empty()).map(PathBuf::from);
    from_env("TOXSCORE_CACHE_DIR")
        .or_else(|| from_env("XDG_CACHE_HOME").map(|dir| dir.join("toxscore")))
        .or_else(|| from_env("HOME").map(|dir| dir.join(".cache").join("toxscore")))
        .unwrap_or_else(|| PathBuf::from(".toxscore-cache"))
}

/// Where Detoxify's checkpoints are when it has downloaded them, as
/// `torch.hub.load_state_dict_from_url` puts them: `$TORCH_HOME/hub/checkpoints`,
/// `TORCH_HOME` defaulting to `$XDG_CACHE_HOME/torch`, else `~/.cache/torch`
/// (`HOME`); `None` when none of these is set. `env` reads an environment
/// variable, as for [`default_cache_dir`].
pub fn torch_hub_checkpoints_dir(env: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let from_env = |name: &str| env(name).filter(|value| !value.is_empty()).map(PathBuf::from);
    let torch_home = from_env("TORCH_HOME")
        .or_else(|| from_env("XDG_CACHE_HOME").map(|dir| dir.join("torch")))
        .or_else(|| from_env("HOME").map(|dir| dir.join(".cache").join("torch")))?;
    Some(torch_home.join("hub").join("checkpoints"))
}

/// A folder of downloaded models: `{root}/{model name}/{checkpoint file}` with
/// the tokenizer files beside each checkpoint.
#[derive(Debug, Clone)]
pub struct ModelCache {
    root: PathBuf,
    release_base_url: String,
    tokenizer_base_url: String,
    torch_hub_checkpoints: Option<PathBuf>,
}

impl ModelCache {
    /// A cache rooted at `root` that downloads from the public addresses.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            release_base_url: RELEASE_BASE_URL.to_owned(),
            tokenizer_base_url: HUGGING_FACE_BASE_URL.to_owned(),
            torch_hub_checkpoints: None,
        }
    }

    /// The cache the environment describes: [`default_cache_dir`], with
    /// Detoxify's downloads in [`torch_hub_checkpoints_dir`] used in place,
    /// and the download addresses overridable for mirrors and tests by
    /// `TOXSCORE_RELEASE_BASE_URL` and `TOXSCORE_TOKENIZER_BASE_URL`. `env`
    /// reads an environment variable, as for [`default_cache_dir`].
    pub fn from_env(env: impl Fn(&str) -> Option<OsString>) -> Self {
        let cache =
            ModelCache::new(default_cache_dir(&env)).with_torch_hub_checkpoints(torch_hub_checkpoints_dir(&env));
        let text = |name: &str| env(name).and_then(|value| value.into_string().ok());
        let (release, tokenizer) = (text("TOXSCORE_RELEASE_BASE_URL"), text("TOXSCORE_TOKENIZER_BASE_URL"));
        if release.is_none() && tokenizer.is_none() {
            return cache;
        }
        cache.with_base_urls(
            release.as_deref().unwrap_or(RELEASE_BASE_URL),
            tokenizer.as_deref().unwrap_or(HUGGING_FACE_BASE_URL),
        )
    }

    /// Downloads from other addresses (a mirror, or a test server): checkpoints
    /// from `{release_base_url}/{release_path}`, tokenizer files from
    /// `{tokenizer_base_url}/{base_model}/resolve/main/{file}`.
    pub fn with_base_urls(mut self, release_base_url: &str, tokenizer_base_url: &str) -> Self {
        self.release_base_url = release_base_url.to_owned();
        self.tokenizer_base_url = tokenizer_base_url.to_owned();
        self
    }

    /// Also finds checkpoints in `folder`, torch hub's checkpoint folder
    /// where Detoxify downloads them ([`torch_hub_checkpoints_dir`]): a
    /// released checkpoint missing from the cache is used from there, in
    /// place, when its SHA-256 verifies. `None` looks nowhere else.
    pub fn with_torch_hub_checkpoints(mut self, folder: Option<PathBuf>) -> Self {
        self.torch_hub_checkpoints = folder;
        self
    }

    /// Where checkpoints missing from the cache are looked for (see
    /// [`with_torch_hub_checkpoints`](Self::with_torch_hub_checkpoints)).
    pub fn torch_hub_checkpoints(&self) -> Option<PathBuf> {
        self.torch_hub_checkpoints.clone()
    }

    /// The cache folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of one model.
    pub fn model_dir(&self, model: &RegisteredModel) -> PathBuf {
        self.root.join(model.name)
    }

    /// Where the model's checkpoint is (or would be) cached.
    pub fn checkpoint_path(&self, model: &RegisteredModel) -> PathBuf {
        self.model_dir(model).join(model.file_name())
    }

    /// Whether the checkpoint and its tokenizer files are all present.
    pub fn is_cached(&self, model: &RegisteredModel) -> bool {
        self.checkpoint_path(model).is_file()
            && model.tokenizer_files.iter().all(|file| self.model_dir(model).join(file).is_file())
    }

    /// Checks the cached checkpoint's SHA-256 against its registered prefix
    /// and returns the full hash.
    pub fn verify(&self, model: &RegisteredModel) -> Result<String> {
        let path = self.checkpoint_path(model);
        let actual = crate::checkpoint::sha256_file(&path)?;
        check_prefix(&path, model.sha256_prefix, &actual)?;
        Ok(actual)
    }

    /// The checkpoint Detoxify downloaded, in torch hub's folder, when it is
    /// there and its SHA-256 verifies. A file that does not verify is left
    /// alone (it is not ours to delete) and not used.
    pub fn torch_hub_checkpoint(&self, model: &RegisteredModel) -> Option<PathBuf> {
        self.verify_torch_hub(model)?.ok().map(|(path, _)| path)
    }

    /// Checks the SHA-256 of Detoxify's download of `model` in torch hub's
    /// folder: `None` when there is no such file, else the file and its full
    /// hash, or why it does not verify.
    pub fn verify_torch_hub(&self, model: &RegisteredModel) -> Option<Result<(PathBuf, String)>> {
        let path = self.torch_hub_checkpoints.as_ref()?.join(model.file_name());
        if !path.is_file() {
            return None;
        }
        let verified = crate::checkpoint::sha256_file(&path)
            .and_then(|actual| check_prefix(&path, model.sha256_prefix, &actual).map(|()| actual));
        Some(verified.map(|actual| (path, actual)))
    }

    /// Returns the model's checkpoint and tokenizer, downloading what is
    /// missing when `allow_download` is set. A checkpoint already cached is
    /// not fetched again (it was verified when it was downloaded); one
    /// missing from the cache is taken from torch hub's folder when it is
    /// there and verifies ([`torch_hub_checkpoint`](Self::torch_hub_checkpoint)).
    /// `progress` is called as the bytes arrive; [`ControlFlow::Break`]
    /// stops the download ([`Error::DownloadStopped`]), leaving no file.
    pub fn ensure(
        &self,
        model: &RegisteredModel,
        allow_download: bool,
        progress: &mut dyn FnMut(Progress<'_>) -> ControlFlow<()>,
    ) -> Result<CachedModel> {
        let cached = self.checkpoint_path(model);
        let checkpoint = if cached.is_file() { Some(cached) } else { self.torch_hub_checkpoint(model) };
        let has_tokenizer = model.tokenizer_files.iter().all(|file| self.model_dir(model).join(file).is_file());
        let checkpoint = match (checkpoint, has_tokenizer, allow_download) {
            (Some(checkpoint), true, _) => checkpoint,
            (_, _, false) => return Err(Error::NotCached { name: model.name.to_owned(), cache: self.root.clone() }),
            (Some(checkpoint), false, true) => {
                self.download_tokenizer(model, progress)?;
                checkpoint
            }
            (None, _, true) => self.download(model, progress)?,
        };
        Ok(CachedModel { checkpoint, tokenizer_dir: self.model_dir(model) })
    }

    /// Downloads the checkpoint (verified) into the cache, and the
    /// tokenizer files it lacks. `progress` as for [`ensure`](Self::ensure).
    pub fn download(
        &self,
        model: &RegisteredModel,
        progress: &mut dyn FnMut(Progress<'_>) -> ControlFlow<()>,
    ) -> Result<PathBuf> {
        self.download_tokenizer(model, progress)?;
        let destination = self.checkpoint_path(model);
        download_file(&model.url(&self.release_base_url), &destination, Some(model.sha256_prefix), progress)?;
        Ok(destination)
    }

    fn download_tokenizer(
        &self,
        model: &RegisteredModel,
        progress: &mut dyn FnMut(Progress<'_>) -> ControlFlow<()>,
    ) -> Result<()> {
        let dir = self.model_dir(model);
        std::fs::create_dir_all(&dir).map_err(|source| Error::io(&dir, source))?;
        for file in model.tokenizer_files {
            let destination = dir.join(file);
            if !destination.is_file() {
                let url = format!(
                    "{}/{}/resolve/main/{file}",
                    self.tokenizer_base_url.trim_end_matches('/'),
                    model.base_model
                );
                download_file(&url, &destination, None, progress)?;
            }
        }
        Ok(())
    }
}

/// A released model ready to load, as [`ModelCache::ensure`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedModel {
    /// The checkpoint: in the cache, or in torch hub's folder.
    pub checkpoint: PathBuf,
    /// The folder of its tokenizer files: the cache's, which is not the
    /// checkpoint's folder when the checkpoint is torch hub's (see
    /// [`LoadOptions::or_tokenizer`](crate::LoadOptions::or_tokenizer)).
    pub tokenizer_dir: PathBuf,
}

/// Download progress, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// The address being fetched.
    pub url: &'a str,
    /// Bytes received so far.
    pub received: u64,
    /// The total, when the server announces it.
    pub total: Option<u64>,
}

/// Downloads `url` to `destination` atomically: into a temporary file in the
/// same folder, hashed as it is written, checked against `sha256_prefix`,
/// synced, then renamed. On any failure, or when `progress` returns
/// [`ControlFlow::Break`] ([`Error::DownloadStopped`]), the temporary file is
/// removed and `destination` is untouched. Returns the SHA-256.
pub fn download_file(
    url: &str,
    destination: &Path,
    sha256_prefix: Option<&str>,
    progress: &mut dyn FnMut(Progress<'_>) -> ControlFlow<()>,
) -> Result<String> {
    let download_error = |problem: String, source: Option<Box<dyn std::error::Error + Send + Sync>>| Error::Download {
        url: url.to_owned(),
        problem,
        source,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_recv_body(Some(Duration::from_secs(3600)))
        .build()
        .into();
    let mut response = agent
        .get(url)
        .call()
        .map_err(|error| download_error("the request failed".to_owned(), Some(Box::new(error))))?;
    let total = response.body().content_length();
    let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();

    let file_name = destination.file_name().and_then(|name| name.to_str()).unwrap_or("download");
    let partial = destination.with_file_name(format!(".{file_name}.part-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&partial).map_err(|source| Error::io(&partial, source))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 16];
        let mut received = 0u64;
        loop {
            let n = reader.read(&mut buffer).map_err(|error| {
                download_error(format!("the connection failed after {received} bytes"), Some(Box::new(error)))
            })?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            file.write_all(&buffer[..n]).map_err(|source| Error::io(&partial, source))?;
            received += n as u64;
            if progress(Progress { url, received, total }).is_break() {
                return Err(Error::DownloadStopped { url: url.to_owned() });
            }
        }
        if let Some(total) = total.filter(|&total| total != received) {
            return Err(download_error(format!("received {received} of {total} bytes"), None));
        }
        let actual = hex::encode(hasher.finalize());
        if let Some(prefix) = sha256_prefix {
            check_prefix(destination, prefix, &actual)?;
        }
        file.sync_all().map_err(|source| Error::io(&partial, source))?;
        drop(file);
        std::fs::rename(&partial, destination).map_err(|source| Error::io(destination, source))?;
        Ok(actual)
    })();
    if result.is_err() {
        // Best effort: the file may not exist if creating it failed.
        let _ = std::fs::remove_file(&partial);
    }
    result
}

fn check_prefix(path: &Path, prefix: &str, actual: &str) -> Result<()> {
    if actual.starts_with(&prefix.to_ascii_lowercase()) {
        Ok(())
    } else {
        Err(Error::HashMismatch { path: path.to_owned(), expected: prefix.to_owned(), actual: actual.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_folder_follows_the_environment_in_order() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| vars.iter().find(|(key, _)| *key == name).map(|(_, value)| OsString::from(value))
        };
        const ALL: &[(&str, &str)] = &[("TOXSCORE_CACHE_DIR", "/c"), ("XDG_CACHE_HOME", "/x"), ("HOME", "/h")];
        assert_eq!(default_cache_dir(env(ALL)), PathBuf::from("/c"));
        assert_eq!(
            default_cache_dir(env(&[("TOXSCORE_CACHE_DIR", ""), ("XDG_CACHE_HOME", "/x")])),
            PathBuf::from("/x/toxscore")
        );
        assert_eq!(default_cache_dir(env(&[("HOME", "/h")])), PathBuf::from("/h/.cache/toxscore"));
        assert_eq!(default_cache_dir(env(&[])), PathBuf::from(".toxscore-cache"));
        assert_eq!(ModelCache::from_env(env(ALL)).root(), Path::new("/c"));
    }

    #[test]
    fn torch_hub_folder_follows_torch_rules() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| vars.iter().find(|(key, _)| *key == name).map(|(_, value)| OsString::from(value))
        };
        let check = |vars: &'static [(&'static str, &'static str)], expected: Option<&str>| {
            assert_eq!(torch_hub_checkpoints_dir(env(vars)), expected.map(PathBuf::from), "{vars:?}");
        };
        check(&[("TORCH_HOME", "/t"), ("XDG_CACHE_HOME", "/x"), ("HOME", "/h")], Some("/t/hub/checkpoints"));
        check(&[("TORCH_HOME", ""), ("XDG_CACHE_HOME", "/x"), ("HOME", "/h")], Some("/x/torch/hub/checkpoints"));
        check(&[("HOME", "/h")], Some("/h/.cache/torch/hub/checkpoints"));
        // TOXSCORE_CACHE_DIR is toxscore's own folder, not torch's.
        check(&[("TOXSCORE_CACHE_DIR", "/c")], None);
    }

    #[test]
    fn registry_names_and_file_names() {
        assert_eq!(MODELS.len(), 5);
        for model in MODELS {
            assert!(model.file_name().contains(model.sha256_prefix), "{}", model.name);
            assert_eq!(find(model.name).unwrap().name, model.name);
        }
        assert!(matches!(find("gpt"), Err(Error::UnknownModel { .. })));
        let original = find("original").unwrap();
        assert!(original.check_sha256(Path::new("x.ckpt"), "c1212f89aa").is_ok());
        assert!(matches!(original.check_sha256(Path::new("x.ckpt"), "0e1d6498aa"), Err(Error::HashMismatch { .. })));
        assert_eq!(
            find("original").unwrap().url(RELEASE_BASE_URL),
            "https://github.com/unitaryai/detoxify/releases/download/v0.1-alpha/toxic_original-c1212f89.ckpt"
        );
    }
}
