"""``embed`` on this machine: read the corpus as a stream, embed it a part at a time, resume after a crash."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from ..errors import CorpusError, InvalidInputError
from .embedding import EmbedSettings, embedding_type, model_identity, to_arrow
from .output import JobState, Output, OutputFormat, PartRecord
from .sources import BadRow, Row, Source

__all__ = ["JobOptions", "Summary", "embed_corpus"]

BAD_ROW_CHOICES = ("fail", "skip")

Progress = Callable[[int, int], None]  # (input entries done, rows embedded) since the start of the job


@dataclasses.dataclass(frozen=True)
class JobOptions:
    """How the job runs: rows per part, what a bad row does, and whether to resume or overwrite."""

    part_size: int = 10_000
    on_bad_row: str = "fail"
    resume: bool = False
    overwrite: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.part_size, bool) or not isinstance(self.part_size, int) or self.part_size < 1:
            raise InvalidInputError(f"part_size must be a positive int, got {self.part_size!r}.")
        if self.on_bad_row not in BAD_ROW_CHOICES:
            raise InvalidInputError(f"on_bad_row must be one of {', '.join(BAD_ROW_CHOICES)}, got {self.on_bad_row!r}.")


@dataclasses.dataclass(frozen=True)
class Summary:
    """What a finished job did; ``texts_per_second`` counts the rows this run embedded."""

    output: str
    rows: int
    embedded: int
    rejected: int
    parts: int
    resumed_rows: int
    seconds: float
    texts_per_second: float
    rejects: str | None
    engine: str = "local"

    def as_json(self) -> dict[str, Any]:
        """The summary as ``--json`` prints it."""
        return dataclasses.asdict(self)

    @classmethod
    def of(
        cls, output: Output, state: JobState, started: float, resumed: int, embedded_before: int, engine: str
    ) -> Summary:
        """The summary of a job that just finished: ``started`` from ``perf_counter``; rates count this run's rows."""
        seconds = time.perf_counter() - started
        return cls(
            output=str(output.path),
            rows=state.rows,
            embedded=state.embedded,
            rejected=state.rejected,
            parts=len([part for part in state.parts if part.embedded]),
            resumed_rows=resumed,
            seconds=round(seconds, 3),
            texts_per_second=round((state.embedded - embedded_before) / max(seconds, 1e-9), 1),
            rejects=str(output.rejects) if state.rejected else None,
            engine=engine,
        )


def job_identity(source: Source, output: Output, settings: EmbedSettings, options: JobOptions) -> dict[str, Any]:
    """What must match for ``--resume`` to continue a job: the input, the model and every setting."""
    return {
        **source.fingerprint(),
        **settings.as_json(),
        "model_files": model_identity(settings.model),
        "output_format": output.format.value,
        "part_size": options.part_size,
        "on_bad_row": options.on_bad_row,
    }


def bad_row_error(source: Source, bad: BadRow) -> CorpusError:
    """The error that stops a job at ``bad`` with ``--on-bad-row fail``."""
    return CorpusError(
        f"{source.path}: {bad.where()}: {bad.reason}. Fix it, or pass --on-bad-row skip to write bad rows to the "
        "rejects file and go on."
    )


def check_output(output: Output, settings: EmbedSettings) -> None:
    """Refuse a combination the output format cannot hold."""
    if output.format is OutputFormat.NPY and settings.kind == "colbert":
        raise InvalidInputError(
            "A ColBERT model gives a different number of token vectors per text, which a .npy matrix cannot hold: "
            "write Parquet or JSONL."
        )


def parts_of(entries: Iterable[Row | BadRow], size: int) -> Iterator[list[Row | BadRow]]:
    """``entries`` in consecutive lists of ``size`` (the last one shorter)."""
    part: list[Row | BadRow] = []
    for entry in entries:
        part.append(entry)
        if len(part) == size:
            yield part
            part = []
    if part:
        yield part


class PartBuilder:
    """Turns rows and their float32 vectors into a part's Arrow table, applying the job's precision."""

    def __init__(self, settings: EmbedSettings, state: JobState, key: str, key_type: Any, width: int) -> None:
        import pyarrow as pa

        self.settings, self.state, self.key, self.width = settings, state, key, width
        self.schema = pa.schema([(key, key_type), ("embedding", embedding_type(settings, width))])

    def table(self, keys: list[Any], vectors: list[np.ndarray] | np.ndarray) -> Any:
        """The part's table; the first part with two or more rows calibrates int8/uint8 for the whole job."""
        import pyarrow as pa

        if self.settings.needs_ranges() and self.state.ranges is None and len(keys) >= 2:
            matrix = np.asarray(vectors)
            self.state.ranges = np.vstack((matrix.min(axis=0), matrix.max(axis=0))).tolist()
        if self.settings.needs_ranges() and self.state.ranges is None and keys:
            raise CorpusError(
                f"precision {self.settings.precision!r} calibrates each dimension on the first part, which holds "
                "a single text: embed at least two texts, or use float32 or binary."
            )
        if not keys:  # every row of the part was bad: an empty table of the job's schema
            return self.schema.empty_table()
        ranges = np.asarray(self.state.ranges, dtype=np.float32) if self.state.ranges is not None else None
        finished = self.settings.finish(vectors, ranges)
        column = to_arrow(self.settings, finished, self.width)
        return pa.table([pa.array(keys, self.schema.field(self.key).type), column], schema=self.schema)


def embed_corpus(
    source: Source,
    output: Output,
    settings: EmbedSettings,
    options: JobOptions | None = None,
    *,
    threads: int | None = None,
    progress: Progress | None = None,
    encoder: Any = None,
) -> Summary:
    """Embed every row of ``source`` into ``output``, a part at a time (with ``resume``: after the last finished one).

    A resumed job gives the same file as an uninterrupted one: parts cover fixed ranges of the
    input, and each is encoded in the same chunks. ``encoder`` may be given already loaded (it
    must be the one ``settings`` names).
    """
    options = options or JobOptions()
    check_output(output, settings)
    started = time.perf_counter()
    state = output.begin(job_identity(source, output, settings, options), options.resume, options.overwrite)
    resumed, embedded_before = state.rows, state.embedded
    encoder = encoder if encoder is not None else settings.load(threads)
    builder = PartBuilder(settings, state, source.key, key_type(source), settings.width(encoder))
    done, embedded = state.rows, state.embedded
    if progress is not None:
        progress(done, embedded)
    entries = source.entries()
    for _ in range(resumed):  # the finished parts' entries: read again, not embedded again
        next(entries, None)
    for part in parts_of(entries, options.part_size):
        rows: list[Row] = []
        rejects: list[dict[str, Any]] = []
        for entry in part:
            if isinstance(entry, BadRow):
                if options.on_bad_row == "fail":
                    raise bad_row_error(source, entry)
                rejects.append(entry.as_json())
            else:
                rows.append(entry)
        report = None if progress is None else functools.partial(_report, progress, done + len(rejects), embedded)
        vectors = settings.embed_all(encoder, [row.text for row in rows], report)
        table = builder.table([row.id for row in rows], vectors)
        record = PartRecord(f"part-{len(state.parts):05d}", len(part), len(rows), len(rejects))
        output.write_part(state, record, table, rejects)
        done, embedded = done + len(part), embedded + len(rows)
        if progress is not None:
            progress(done, embedded)
    output.finish(state, with_metadata(builder.schema, settings, state, source), source.key)
    return Summary.of(output, state, started, resumed, embedded_before, "local")


def _report(progress: Progress, done: int, embedded: int, finished: int) -> None:
    """The progress of a part after ``finished`` of its rows (its bad rows counted before them)."""
    progress(done + finished, embedded + finished)


def key_type(source: Source) -> Any:
    """The Arrow type of the id column: int64 row numbers, the Parquet column's own type, CSV ids as strings."""
    import pyarrow as pa

    if source.id_column is None:
        return pa.int64()
    if source.format.value == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(source.path).schema_arrow.field(source.id_column).type
    if source.format.value == "jsonl":
        return _first_json_id_type(source)
    return pa.string()


def _first_json_id_type(source: Source) -> Any:
    import pyarrow as pa

    for entry in source.entries():
        if isinstance(entry, Row):
            return pa.int64() if isinstance(entry.id, int) else pa.string()
    return pa.string()


def with_metadata(schema: Any, settings: EmbedSettings, state: JobState, source: Source) -> Any:
    """The output schema with what made it (model, settings, int8 ranges) in its ``fastembed_adapter`` metadata."""
    import json

    meta = {"settings": settings.as_json(), "ranges": state.ranges, "input": str(source.path), "rows": state.rows}
    return schema.with_metadata({b"fastembed_adapter": json.dumps(meta).encode("utf-8")})
