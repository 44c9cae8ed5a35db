"""What a corpus job computes per text, shared by the local job and the Ray actors: settings, encoder, Arrow columns."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidInputError
from ..pooling import PRECISIONS, quantize

if TYPE_CHECKING:
    import pyarrow as pa

    from ..colbert import OnnxColbertEncoder
    from ..encoder import OnnxSentenceEncoder

__all__ = ["EmbedSettings", "embedding_type", "model_identity", "to_arrow"]

KINDS = ("dense", "colbert")


@dataclasses.dataclass(frozen=True)
class EmbedSettings:
    """The model and the ``encode()`` arguments of a job; the same on every machine that runs a part of it.

    ``kind`` is ``dense`` (:class:`~fastembed_adapter.OnnxSentenceEncoder`, one vector per text) or
    ``colbert`` (:class:`~fastembed_adapter.OnnxColbertEncoder`, one vector per kept token).
    """

    model: str
    kind: str = "dense"
    file_name: str | None = None
    batch_size: int = 32
    prompt_name: str | None = None
    normalize: bool = False
    truncate_dim: int | None = None
    precision: str = "float32"
    is_query: bool = False
    pool_factor: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidInputError(f"Unknown model kind {self.kind!r}. Valid kinds: {', '.join(KINDS)}.")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise InvalidInputError(f"batch_size must be a positive int, got {self.batch_size!r}.")
        if self.precision not in PRECISIONS:
            raise InvalidInputError(f"Unknown precision {self.precision!r}. Valid precisions: {', '.join(PRECISIONS)}.")
        if self.kind == "colbert":
            dense_only = {
                "prompt_name": self.prompt_name is not None,
                "normalize": self.normalize,
                "truncate_dim": self.truncate_dim is not None,
                "precision": self.precision != "float32",
            }
            given = [name for name, used in dense_only.items() if used]
            if given:
                raise InvalidInputError(
                    f"{', '.join(given)} apply to dense models only; a ColBERT model gives float32 per-token "
                    "vectors, L2-normalised."
                )
        elif self.is_query or self.pool_factor != 1:
            raise InvalidInputError("is_query and pool_factor apply to ColBERT models only.")

    @staticmethod
    def kind_of(model: str, kind: str = "auto") -> str:
        """``kind``, or for ``auto`` the kind the model's configs declare (``colbert`` or ``dense``)."""
        if kind != "auto":
            return kind
        from ..hub import is_colbert_model

        return "colbert" if is_colbert_model(model, None) else "dense"

    def as_json(self) -> dict[str, Any]:
        """The settings as the job's state file and the output's metadata record them."""
        return dataclasses.asdict(self)

    def load(self, threads: int | None = None) -> OnnxSentenceEncoder | OnnxColbertEncoder:
        """The encoder these settings name, with ``threads`` ONNX Runtime threads and no cache (each text is new)."""
        if self.kind == "colbert":
            from ..colbert import OnnxColbertEncoder

            return OnnxColbertEncoder(self.model, file_name=self.file_name, threads=threads, cache_size=0)
        from ..encoder import OnnxSentenceEncoder

        return OnnxSentenceEncoder(self.model, file_name=self.file_name, threads=threads, cache_size=0)

    def embed(self, encoder: Any, texts: Sequence[str]) -> list[np.ndarray] | np.ndarray:
        """float32 embeddings of ``texts``: ``(n, dim)`` (dense), or a ``(tokens, dim)`` array per text (ColBERT)."""
        if self.kind == "colbert":
            return list(
                encoder.encode(
                    list(texts),
                    is_query=self.is_query,
                    batch_size=self.batch_size,
                    pool_factor=self.pool_factor,
                    show_progress_bar=False,
                )
            )
        vectors: np.ndarray = encoder.encode(
            list(texts),
            prompt_name=self.prompt_name,
            batch_size=self.batch_size,
            normalize_embeddings=self.normalize,
            truncate_dim=self.truncate_dim,
            show_progress_bar=False,
        )
        return vectors.reshape(len(texts), -1) if len(texts) else vectors.reshape(0, 0)

    def embed_all(
        self, encoder: Any, texts: Sequence[str], done: Callable[[int], None] | None = None
    ) -> list[np.ndarray] | np.ndarray:
        """:meth:`embed` of a whole part, a window at a time, in input order; ``done(n)`` after each window.

        The windows are those ``encode()`` would tokenize together (longest first by characters, up
        to 16 batches), so a part costs what one ``encode()`` call over it costs, while memory and the
        progress bar move a window at a time. Fixed by the texts alone: a resumed part is computed
        exactly as before.
        """
        from ..planning import windows

        results: list[Any] = [None] * len(texts)
        finished = 0
        for window in windows([len(text) for text in texts], self.batch_size):
            for index, vector in zip(window, self.embed(encoder, [texts[i] for i in window]), strict=True):
                results[index] = vector
            finished += len(window)
            if done is not None:
                done(finished)
        if self.kind == "colbert":
            return results
        return np.stack(results) if results else np.zeros((0, 0), np.float32)

    def width(self, encoder: Any) -> int:
        """Values per vector in the output: the (truncated) dimension, an eighth of it packed as binary."""
        dimension = int(encoder.get_sentence_embedding_dimension())
        if self.truncate_dim is not None:
            dimension = min(dimension, self.truncate_dim)
        return -(-dimension // 8) if self.precision.endswith("binary") else dimension

    def needs_ranges(self) -> bool:
        """Whether the precision buckets each dimension between calibrated ranges (int8, uint8)."""
        return self.precision.endswith("int8") and self.kind == "dense"

    def finish(
        self, vectors: list[np.ndarray] | np.ndarray, ranges: np.ndarray | None
    ) -> list[np.ndarray] | np.ndarray:
        """Apply the precision: float32 as is, int8/uint8 with the job's ``ranges``, binary packed."""
        if self.kind == "colbert" or self.precision == "float32":
            return vectors
        return quantize(np.asarray(vectors), self.precision, ranges)


def model_identity(model: str) -> str:
    """What changes with the model: the sha256 of a folder's manifest (else of its file sizes), or the hub id."""
    import hashlib
    from pathlib import Path

    from ..layout import MANIFEST_NAME

    root = Path(model)
    if not root.is_dir():
        return model
    manifest = root / MANIFEST_NAME
    if manifest.is_file():
        return "sha256:" + hashlib.sha256(manifest.read_bytes()).hexdigest()
    files = sorted((str(path.relative_to(root)), path.stat().st_size) for path in root.rglob("*") if path.is_file())
    return "files:" + hashlib.sha256(repr(files).encode()).hexdigest()


def embedding_type(settings: EmbedSettings, width: int) -> pa.DataType:
    """The Arrow type of the embedding column: fixed-size lists of ``width`` values, one list per token for ColBERT."""
    import pyarrow as pa

    if settings.kind == "colbert":
        return pa.list_(pa.list_(pa.float32(), width))
    value = {"float32": pa.float32(), "int8": pa.int8(), "binary": pa.int8()}.get(settings.precision, pa.uint8())
    return pa.list_(value, width)


def to_arrow(settings: EmbedSettings, vectors: list[np.ndarray] | np.ndarray, width: int) -> pa.Array:
    """The embedding column of a part from its vectors, without a Python object per number."""
    import pyarrow as pa

    kind = embedding_type(settings, width)
    if settings.kind == "colbert":
        matrices = list(vectors)
        counts = np.fromiter((len(matrix) for matrix in matrices), dtype=np.int32, count=len(matrices))
        offsets = pa.array(np.concatenate(([0], np.cumsum(counts))).astype(np.int32))
        flat = np.concatenate(matrices).ravel() if matrices else np.zeros(0, np.float32)
        tokens = pa.FixedSizeListArray.from_arrays(pa.array(flat.astype(np.float32, copy=False)), width)
        return pa.ListArray.from_arrays(offsets, tokens, type=kind)
    matrix = np.ascontiguousarray(vectors)
    values = pa.array(matrix.ravel()) if matrix.size else pa.array([], kind.value_type)
    return pa.FixedSizeListArray.from_arrays(values, width)
