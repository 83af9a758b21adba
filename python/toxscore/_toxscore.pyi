"""Type stubs of the extension module (crates/toxpy/src/lib.rs)."""

from collections.abc import Callable
from os import PathLike
from pathlib import Path

__version__: str

class Model:
    """A loaded Detoxify model (Rust)."""

    @staticmethod
    def open(
        *,
        checkpoint: str | PathLike[str] | None = None,
        name: str = "original",
        cache_dir: str | PathLike[str] | None = None,
        allow_download: bool = True,
        hf_config: str | PathLike[str] | None = None,
        tokenizer: str | PathLike[str] | None = None,
        device: str = "cpu",
        precision: str = "f32",
        workers: int | None = None,
    ) -> Model:
        """A local `checkpoint`, or else the released model `name` from the cache."""
    @property
    def class_names(self) -> list[str]: ...
    @property
    def all_class_names(self) -> list[str]: ...
    @property
    def checkpoint(self) -> Path: ...
    @property
    def backend(self) -> str: ...
    @property
    def device(self) -> str: ...
    @property
    def device_name(self) -> str | None: ...
    @property
    def device_is_software(self) -> bool: ...
    @property
    def precision(self) -> str: ...
    @property
    def architecture(self) -> str: ...
    @property
    def workers(self) -> int: ...
    @property
    def ignored_tensors(self) -> list[str]: ...
    def predict(
        self,
        texts: list[str],
        *,
        all_outputs: bool = False,
        batch_size: int = 32,
        progress: Callable[[int], object] | None = None,
    ) -> list[list[float]]:
        """One list of scores per class, each in input order."""

def default_cache_dir() -> Path: ...
def model_names() -> list[str]: ...
def cached_checkpoint_path(name: str, cache_dir: str | PathLike[str] | None = None) -> Path: ...
def backends() -> list[str]: ...
def devices() -> list[str]: ...
