"""Detoxify's toxicity classifiers with Detoxify's API, without torch.

    >>> from toxscore import Detoxify
    >>> model = Detoxify("original")                  # downloaded into the cache once
    >>> model.predict("shut up, you liar")            # {"toxicity": 0.98..., ...}
    >>> model.predict(["have a nice day", "idiot"])   # {"toxicity": [0.0..., 0.9...], ...}

The model runs in Rust (the ``toxmodel`` crate, through the extension module
``toxscore._toxscore``); importing this package imports neither torch nor
transformers, and pandas only when :func:`score_frame` is called.

Errors are Python exceptions carrying toxscore's message: ``ValueError`` for
bad input (a text that is not a string, a broken checkpoint, an unknown
model: :class:`UnknownModelError`, a ``KeyError`` too, as Detoxify raises),
``OSError`` for files and downloads (``FileNotFoundError`` for a missing
checkpoint), ``RuntimeError`` otherwise.

A :class:`Detoxify` pickles (it is loaded again from the same arguments in
the process that unpickles it: multiprocessing, joblib) and deep-copies (the
copy shares the loaded model, which is immutable and thread-safe).
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Union

from toxscore import _toxscore

if TYPE_CHECKING:  # pragma: no cover
    import pandas

__all__ = [
    "Detoxify",
    "UnknownModelError",
    "score_frame",
    "default_cache_dir",
    "devices",
    "MODEL_NAMES",
    "__version__",
]

__version__: str = _toxscore.__version__

#: Detoxify's five released models, in its order.
MODEL_NAMES: List[str] = list(_toxscore.model_names())

#: Lists at least this long get a progress bar with ``progress=True``
#: (tqdm, when it is installed): shorter ones are done before a bar would help.
PROGRESS_MIN_TEXTS = 256

_PathLike = Union[str, "os.PathLike[str]"]


class UnknownModelError(KeyError, ValueError):
    """A ``model_type`` that is not one of :data:`MODEL_NAMES`. Detoxify
    raises ``KeyError`` (it looks the name up in its dict of URLs); toxscore
    calls it bad input, a ``ValueError``: this is both, so code catching
    either keeps working."""

    def __str__(self) -> str:
        # KeyError quotes its message as a repr; this is a sentence.
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


def _positive_int(name: str, value: Any) -> int:
    """``value`` if it is an int from 1 to ``sys.maxsize`` (what the Rust
    layer takes), else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= sys.maxsize:
        raise ValueError(f"{name} must be a positive int (at most {sys.maxsize}), got {value!r}")
    return value


def devices() -> List[str]:
    """The devices this build can run on, the default first (``cpu``, then
    ``wgpu`` or ``cuda`` where compiled in); whether this machine has them is
    known when a model loads."""
    return list(_toxscore.devices())


def default_cache_dir() -> str:
    """The folder released models are downloaded into, shared with ``toxcli``:
    ``TOXSCORE_CACHE_DIR``, else ``$XDG_CACHE_HOME/toxscore``, else
    ``~/.cache/toxscore``."""
    return os.fspath(_toxscore.default_cache_dir())


def _device_name(device: Any) -> str:
    """Detoxify takes what torch's ``map_location`` and ``model.to`` take: a
    string, a ``torch.device`` (read without importing torch), an int N
    (torch's ``cuda:N``) or None (no move: the CPU, where torch loads).
    Returns the device's name for the Rust parser."""
    if device is None:
        return "cpu"
    if isinstance(device, str):
        return device
    if isinstance(device, int) and not isinstance(device, bool):
        if device < 0:
            raise ValueError(f"device must be a device number (0, 1, ...), got {device}")
        return f"cuda:{device}"
    device_type = getattr(device, "type", None)
    if isinstance(device_type, str):
        index = getattr(device, "index", None)
        return device_type if index is None else f"{device_type}:{index}"
    raise ValueError(f"device must be a string such as 'cpu', got {type(device).__name__} {device!r}")


def _texts_of(text: Any) -> Optional[List[str]]:
    """The texts of ``predict``'s argument: None for one string, else the list.

    Detoxify hands its argument to a transformers tokenizer, which takes a
    ``str`` or a list or tuple of ``str``; so does this, and it names the
    first item that is not a string."""
    if isinstance(text, str):
        return None
    if not isinstance(text, (list, tuple)):
        raise ValueError(
            f"text must be a str or a list of str, got {type(text).__name__}"
            + (f" {text!r}" if text is None or isinstance(text, (int, float, bytes)) else "")
        )
    for text_idx, item in enumerate(text):
        if not isinstance(item, str):
            raise ValueError(
                f"text must be a str or a list of str, but item {text_idx} of the "
                f"{type(text).__name__} is {type(item).__name__} {item!r:.80}"
            )
    return list(text)


class _ProgressBar:
    """A tqdm bar when tqdm is importable, else nothing."""

    def __init__(self, total: int) -> None:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            self._bar = None
        else:
            self._bar = tqdm(total=total, unit="text", desc="toxscore")
        self._done = 0

    def __call__(self, scored: int) -> None:
        if self._bar is not None:
            self._bar.update(scored - self._done)
        self._done = scored

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class Detoxify:
    """Detoxify's ``Detoxify`` class, backed by toxscore's Rust port.

    Args:
        model_type: one of ``original``, ``unbiased``, ``multilingual``,
            ``original-small``, ``unbiased-small``; downloaded (and its SHA-256
            checked) into :func:`default_cache_dir` on first use, unless
            Detoxify already downloaded it into torch hub's folder. Ignored when
            ``checkpoint`` is given, as in Detoxify. Another name raises
            :class:`UnknownModelError` (a ``KeyError``, as in Detoxify).
        checkpoint: a local Detoxify ``.ckpt`` file.
        device: ``"cpu"`` (the default), ``"wgpu"`` / ``"wgpu:N"`` (a GPU
            through Vulkan, Metal or DX12) or ``"cuda"`` / ``"cuda:N"``, or a
            ``torch.device`` of those types; as torch, ``None`` and ``"cpu:0"``
            are the CPU and an int N is ``"cuda:N"``. GPUs only in a build with that
            Cargo feature (:func:`devices` lists this build's). A device this
            build or machine lacks raises ``ValueError``, never falling back
            to the CPU.
        huggingface_config_path: a folder holding the base model's
            ``config.json`` and tokenizer files, as Detoxify takes it for
            offline use; by default the built-in base config and the
            tokenizer files beside the checkpoint.
        cache_dir: toxscore only: the download cache (default
            :func:`default_cache_dir`).
        allow_download: toxscore only: set False to fail instead of
            downloading a model missing from the cache.
        workers: toxscore only: how many batches run side by side (default:
            one per core; one on a GPU).
        precision: toxscore only: ``"f32"``, the default and, in the
            published builds, the only one: f16 drifts over 1e-3 from f32
            (docs/gpu.md) and is built only with the Cargo feature
            ``f16-experiment``, to measure it.

    Attributes:
        class_names: the classes ``predict`` returns, in Detoxify's order.
        device: the device given.
    """

    def __init__(
        self,
        model_type: str = "original",
        checkpoint: Optional[_PathLike] = None,
        device: Any = "cpu",
        huggingface_config_path: Optional[_PathLike] = None,
        *,
        cache_dir: Optional[_PathLike] = None,
        allow_download: bool = True,
        workers: Optional[int] = None,
        precision: str = "f32",
    ) -> None:
        device_name = _device_name(device)
        if workers is not None:
            _positive_int("workers", workers)
        # Absolute, so that a copy unpickled elsewhere (another working
        # folder) opens the same files.
        checkpoint, huggingface_config_path, cache_dir = (
            None if path is None else os.path.abspath(os.fspath(path))
            for path in (checkpoint, huggingface_config_path, cache_dir)
        )
        hf_config = tokenizer = None
        if huggingface_config_path is not None:
            hf_config, tokenizer = os.path.join(huggingface_config_path, "config.json"), huggingface_config_path
        if checkpoint is None and (not isinstance(model_type, str) or model_type not in MODEL_NAMES):
            raise UnknownModelError(f"unknown model {model_type!r}; known models: {', '.join(MODEL_NAMES)}")
        # What __reduce__ opens the model again from.
        self._arguments: Dict[str, Any] = dict(
            model_type=model_type,
            checkpoint=checkpoint,
            device=device_name,
            huggingface_config_path=huggingface_config_path,
            cache_dir=cache_dir,
            allow_download=allow_download,
            workers=workers,
            precision=precision,
        )
        self._model = _toxscore.Model.open(
            checkpoint=checkpoint,
            name=model_type if checkpoint is None else "original",
            cache_dir=cache_dir,
            allow_download=allow_download,
            hf_config=hf_config,
            tokenizer=tokenizer,
            device=device_name,
            precision=precision,
            workers=workers,
        )
        if self._model.precision == "f16":
            warnings.warn(
                "precision='f16' (an f16-experiment build) drifts up to 8.5e-3 from f32 on the fixture "
                "models (docs/gpu.md); use 'f32' for results you keep",
                stacklevel=2,
            )
        if self._model.device_is_software:
            warnings.warn(
                f"device={device_name!r} runs on {self._model.device_name}: it computes on the CPU, slower "
                "than device='cpu'; for a GPU, install its vendor's Vulkan driver (docs/gpu.md)",
                stacklevel=2,
            )
        self.model_type = model_type
        self.checkpoint = os.fspath(self._model.checkpoint)
        self.device = device
        self.class_names: List[str] = list(self._model.class_names)

    @property
    def device_name(self) -> Optional[str]:
        """The device as its runtime names it (the wgpu adapter, the CUDA card), or None on the CPU."""
        return self._model.device_name

    @property
    def all_class_names(self) -> List[str]:
        """Every output's name, the identity outputs of the 16-output models included."""
        return list(self._model.all_class_names)

    def predict(
        self,
        text: Union[str, Sequence[str]],
        *,
        batch_size: int = 32,
        all_outputs: bool = False,
        progress: bool = False,
    ) -> Dict[str, Any]:
        """Scores one text or a list of texts.

        Returns ``{class: score}`` for a string and ``{class: [score, ...]}``
        (in input order) for a list or tuple, the classes in Detoxify's order.
        Unlike Detoxify, a list of one text gives lists of one score, and an
        empty list gives empty lists.

        Args:
            text: a ``str``, or a list or tuple of ``str``.
            batch_size: texts per model batch. Texts are sorted by length and
                batched inside, so it bounds memory, not the work per call.
            all_outputs: every output, the 9 identity outputs of the
                16-output models included (Detoxify returns only the named ones).
            progress: show a tqdm progress bar (if tqdm is installed) for
                lists of at least ``PROGRESS_MIN_TEXTS`` texts.
        """
        texts = _texts_of(text)
        _positive_int("batch_size", batch_size)
        names = self.all_class_names if all_outputs else self.class_names
        bar = _ProgressBar(len(texts)) if progress and texts is not None and len(texts) >= PROGRESS_MIN_TEXTS else None
        try:
            columns = self._model.predict(
                [text] if texts is None else texts, all_outputs=all_outputs, batch_size=batch_size, progress=bar
            )
        finally:
            if bar is not None:
                bar.close()
        if texts is None:
            return {name: column[0] for name, column in zip(names, columns)}
        return {name: column for name, column in zip(names, columns)}

    def __repr__(self) -> str:
        return f"Detoxify(checkpoint={self.checkpoint!r}, classes={self.class_names!r})"

    def __reduce__(self) -> Any:
        # The loaded model lives in Rust and does not pickle: a pickle holds
        # the constructor's arguments, and unpickling opens the model again
        # (from the cache, or the same local files) in that process.
        return (_reopen, (type(self), self._arguments))

    def __copy__(self) -> "Detoxify":
        copied = type(self).__new__(type(self))
        copied.__dict__.update(self.__dict__)
        return copied

    def __deepcopy__(self, memo: Dict[int, Any]) -> "Detoxify":
        import copy

        # The Rust model is immutable and thread-safe: the copy shares it
        # rather than loading it again; everything else is copied.
        copied = type(self).__new__(type(self))
        memo[id(self)] = copied
        for name, value in self.__dict__.items():
            copied.__dict__[name] = value if name == "_model" else copy.deepcopy(value, memo)
        return copied


def _reopen(cls: type, arguments: Dict[str, Any]) -> Detoxify:
    """Unpickles a :class:`Detoxify` (or subclass): opens it again."""
    return cls(**arguments)


def score_frame(
    df: "pandas.DataFrame",
    text_column: str = "text",
    model: Union[Detoxify, str] = "original",
    *,
    batch_size: int = 32,
    all_outputs: bool = False,
    progress: bool = False,
    prefix: str = "",
) -> "pandas.DataFrame":
    """Returns a copy of ``df`` with one column per class (``prefix`` + the
    class name) holding the scores of ``df[text_column]``.

    Each distinct text is scored once: a frame of tweets, where retweets
    repeat a text, costs only its distinct texts. ``model`` is a
    :class:`Detoxify` or a model name. Missing texts (NaN, None) are refused
    with ``ValueError``, as ``predict`` refuses non-strings.
    """
    import pandas  # imported here: only score_frame needs pandas

    if text_column not in df.columns:
        raise ValueError(f"score_frame: the frame has no column {text_column!r}; its columns: {list(df.columns)!r}")
    if isinstance(model, str):
        model = Detoxify(model)
    names = model.all_class_names if all_outputs else model.class_names
    taken = [prefix + name for name in names if prefix + name in df.columns]
    if taken:
        raise ValueError(
            f"score_frame: the frame already has columns named like the scores ({', '.join(map(repr, taken))}); "
            "pass prefix= (for example prefix='score_') to name the score columns apart"
        )
    column = df[text_column]
    not_text = [(label, value) for label, value in column.items() if not isinstance(value, str)]
    if not_text:
        label, value = not_text[0]
        raise ValueError(
            f"score_frame: column {text_column!r} holds {len(not_text)} values that are not strings "
            f"(row {label!r} is {type(value).__name__} {value!r:.80})"
        )
    codes, distinct = pandas.factorize(column, sort=False)
    scores = model.predict(list(distinct), batch_size=batch_size, all_outputs=all_outputs, progress=progress)
    out = df.copy()
    for name, values in scores.items():
        out[prefix + name] = pandas.Series(values, dtype="float32").to_numpy()[codes]
    return out
