"""Type stubs of the extension module (crates/toxpy/src/lib.rs)."""

from collections.abc import Callable
from os import PathLike

__version__: str

class Model:
    """A loaded Detoxify model (Rust)."""

    @staticmethod
    def from_checkpoint(
        checkpoint: str | PathLike[str],
        *,
        hf_config: str | PathLike[str] | None = None,
        tokenizer: str | PathLike[str] | None = None,
        device: str = "cpu",
        workers: int | None = None,
    ) -> Model: ...
    @staticmethod
    def from_registry(
        name: str,
        *,
        cache_dir: str | PathLike[str] | None = None,
        allow_download: bool = True,
        hf_config: str | PathLike[str] | None = None,
        tokenizer: str | PathLike[str] | None = None,
        device: str = "cpu",
        workers: int | None = None,
    ) -> Model: ...
    @property
    def class_names(self) -> list[str]: ...
    @property
    def all_class_names(self) -> list[str]: ...
    @property
    def checkpoint(self) -> str: ...
    @property
    def backend(self) -> str: ...
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

def default_cache_dir() -> str: ...
def model_names() -> list[str]: ...
def cached_checkpoint_path(name: str, cache_dir: str | PathLike[str] | None = None) -> str: ...
def backends() -> list[str]: ...
