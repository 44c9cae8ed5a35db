"""A job's output on disk: finished parts and their state beside the output, then one final file made atomically.

While a job runs, ``OUT.parts/`` holds ``part-NNNNN.parquet`` (ids and embeddings of one part),
``part-NNNNN.rejects.jsonl`` (its bad rows, with ``--on-bad-row skip``) and ``job.json`` (what the
job is and which parts are finished). Each file is written to a temporary name and renamed, and
``job.json`` is renamed last, so a job killed at any moment leaves only finished parts behind and
``--resume`` continues after the last one. At the end the parts are merged, a part at a time, into
``OUT`` (Parquet, ``.npy`` or JSONL) written under a temporary name and renamed, the rejects into
``OUT.rejects.jsonl``, and ``OUT.parts/`` is removed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorpusError, OutputExistsError, OutputWriteError

__all__ = ["JobState", "Output", "OutputFormat", "PartRecord"]

STATE_NAME = "job.json"
_STATE_VERSION = 1
_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".npy": "npy", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class OutputFormat(str, Enum):
    """What ``embed`` writes: Parquet (ids + embedding column), a ``.npy`` matrix (+ ids), or JSON lines."""

    PARQUET = "parquet"
    NPY = "npy"
    JSONL = "jsonl"


@dataclasses.dataclass(frozen=True)
class PartRecord:
    """One finished part: input entries it covers, rows embedded, rows rejected, and its file names."""

    name: str
    rows: int
    embedded: int
    rejected: int

    @property
    def embeddings_file(self) -> str:
        """The part's Parquet file (absent when nothing in it was embedded)."""
        return f"{self.name}.parquet"

    @property
    def rejects_file(self) -> str:
        """The part's rejects (absent when it had none)."""
        return f"{self.name}.rejects.jsonl"


@dataclasses.dataclass
class JobState:
    """``job.json``: the job's identity (compared on ``--resume``), its finished parts, and the int8 ranges."""

    job: dict[str, Any]
    parts: list[PartRecord] = dataclasses.field(default_factory=list)
    ranges: list[list[float]] | None = None

    @property
    def rows(self) -> int:
        """Input entries the finished parts cover (the number to skip on resume)."""
        return sum(part.rows for part in self.parts)

    @property
    def embedded(self) -> int:
        """Rows embedded by the finished parts."""
        return sum(part.embedded for part in self.parts)

    @property
    def rejected(self) -> int:
        """Bad rows the finished parts wrote to their rejects files."""
        return sum(part.rejected for part in self.parts)

    def dumps(self) -> str:
        """The state as ``job.json`` holds it."""
        parts = [dataclasses.asdict(part) for part in self.parts]
        return json.dumps({"version": _STATE_VERSION, "job": self.job, "parts": parts, "ranges": self.ranges}, indent=1)

    @classmethod
    def load(cls, path: Path) -> JobState:
        """Read ``job.json``; a damaged one is a ``CorpusError`` saying how to start over."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != _STATE_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {_STATE_VERSION}")
            parts = [PartRecord(**part) for part in data["parts"]]
            return cls(job=data["job"], parts=parts, ranges=data.get("ranges"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CorpusError(
                f"Cannot resume from {str(path)!r}: {exc}. Start over with --overwrite (the parts are discarded)."
            ) from exc


@dataclasses.dataclass(frozen=True)
class Output:
    """The output file, its format, and the files beside it (parts folder, rejects, ids of a ``.npy``)."""

    path: Path
    format: OutputFormat

    @classmethod
    def of(cls, path: str | Path, given: str | None = None) -> Output:
        """``given``, else the format the suffix names (default Parquet)."""
        path = Path(path)
        name = given or _SUFFIXES.get(path.suffix.lower(), "parquet")
        try:
            return cls(path, OutputFormat(name))
        except ValueError:
            choices = ", ".join(item.value for item in OutputFormat)
            raise CorpusError(f"Unknown output format {name!r}. Valid formats: {choices}.") from None

    @property
    def parts_dir(self) -> Path:
        """Where the finished parts and ``job.json`` wait until the job ends."""
        return self.path.with_name(self.path.name + ".parts")

    @property
    def rejects(self) -> Path:
        """The bad rows of a job run with ``--on-bad-row skip``, one JSON object per line."""
        return self.path.with_name(self.path.name + ".rejects.jsonl")

    @property
    def ids(self) -> Path:
        """The ids of a ``.npy`` output, one JSON value per line, row for row."""
        return self.path.with_name(self.path.name + ".ids.jsonl")

    # -- the parts folder -----------------------------------------------------------------------

    def begin(self, job: dict[str, Any], resume: bool, overwrite: bool) -> JobState:
        """The state to continue from: a fresh one, or the finished parts of the same job with ``resume``."""
        if self.path.exists() and not overwrite:
            raise OutputExistsError(f"{str(self.path)!r} exists; pass --overwrite to replace it.")
        state_file = self.parts_dir / STATE_NAME
        if self.parts_dir.exists():
            if resume and state_file.is_file():
                state = JobState.load(state_file)
                _check_same_job(state.job, job, self.parts_dir)
                return state
            if not overwrite and not resume:
                raise OutputExistsError(
                    f"{str(self.parts_dir)!r} holds the parts of an unfinished job: pass --resume to continue it, "
                    "or --overwrite to start over."
                )
            shutil.rmtree(self.parts_dir)
        try:
            self.parts_dir.mkdir(parents=True)
        except OSError as exc:
            raise OutputWriteError(f"Cannot create {str(self.parts_dir)!r}: {exc.strerror or exc}.") from exc
        state = JobState(job=job)
        self.save(state)
        return state

    def save(self, state: JobState) -> None:
        """Write ``job.json`` atomically (after the part files it lists)."""
        _write_atomically(self.parts_dir / STATE_NAME, state.dumps().encode("utf-8"))

    def write_part(self, state: JobState, part: PartRecord, table: Any, rejects: list[dict[str, Any]]) -> None:
        """Write one part's files, then record it in ``job.json``: a crash in between leaves it unlisted."""
        import pyarrow.parquet as pq

        if rejects:
            lines = "".join(json.dumps(reject, ensure_ascii=False) + "\n" for reject in rejects)
            _write_atomically(self.parts_dir / part.rejects_file, lines.encode("utf-8"))
        if table is not None and table.num_rows:
            temporary = self.parts_dir / f".{part.embeddings_file}.tmp"
            try:
                pq.write_table(table, temporary)
                os.replace(temporary, self.parts_dir / part.embeddings_file)
            except OSError as exc:
                raise OutputWriteError(f"Cannot write {part.embeddings_file!r}: {exc.strerror or exc}.") from exc
        state.parts.append(part)
        self.save(state)

    def tables(self, state: JobState) -> Iterator[Any]:
        """The finished parts' tables in order, one in memory at a time."""
        import pyarrow.parquet as pq

        for part in state.parts:
            if part.embedded:
                yield pq.read_table(self.parts_dir / part.embeddings_file)

    # -- the final file -------------------------------------------------------------------------

    def finish(self, state: JobState, schema: Any, key: str) -> None:
        """Merge the parts into the output (and the rejects), each renamed into place; then drop the parts."""
        writers = {OutputFormat.PARQUET: self._parquet, OutputFormat.NPY: self._npy, OutputFormat.JSONL: self._jsonl}
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            writers[self.format](state, schema, key, temporary)
            if self.format is OutputFormat.NPY:
                ids = temporary.with_name(temporary.name + ".ids")
                self._ids(state, key, ids)
                os.replace(ids, self.ids)
            self._rejects(state)
            os.replace(temporary, self.path)
        except OSError as exc:
            raise OutputWriteError(f"Cannot write {str(self.path)!r}: {exc.strerror or exc}.") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
        shutil.rmtree(self.parts_dir, ignore_errors=True)

    def _parquet(self, state: JobState, schema: Any, key: str, temporary: Path) -> None:
        import pyarrow.parquet as pq

        with pq.ParquetWriter(temporary, schema) as writer:
            for table in self.tables(state):
                writer.write_table(table.cast(schema))

    def _npy(self, state: JobState, schema: Any, key: str, temporary: Path) -> None:
        field = schema.field("embedding").type
        dtype = np.dtype(field.value_type.to_pandas_dtype())
        matrix = np.lib.format.open_memmap(temporary, mode="w+", dtype=dtype, shape=(state.embedded, field.list_size))
        start = 0
        for table in self.tables(state):
            values = table.column("embedding").combine_chunks().flatten().to_numpy()
            matrix[start : start + table.num_rows] = values.reshape(table.num_rows, field.list_size)
            start += table.num_rows
        matrix.flush()
        del matrix

    def _jsonl(self, state: JobState, schema: Any, key: str, temporary: Path) -> None:
        with temporary.open("w", encoding="utf-8") as file:
            for table in self.tables(state):
                for ident, vector in zip(
                    table.column(key).to_pylist(), table.column("embedding").to_pylist(), strict=True
                ):
                    file.write(json.dumps({key: ident, "embedding": vector}, ensure_ascii=False) + "\n")

    def _ids(self, state: JobState, key: str, path: Path) -> None:
        with path.open("w", encoding="utf-8") as file:
            for table in self.tables(state):
                file.writelines(json.dumps(ident, ensure_ascii=False) + "\n" for ident in table.column(key).to_pylist())

    def _rejects(self, state: JobState) -> None:
        if not state.rejected:
            with contextlib.suppress(FileNotFoundError):
                self.rejects.unlink()  # an --overwrite run must not leave the last run's rejects beside it
            return
        temporary = self.rejects.with_name(f".{self.rejects.name}.tmp")
        with temporary.open("wb") as file:
            for part in state.parts:
                if part.rejected:
                    file.write((self.parts_dir / part.rejects_file).read_bytes())
        os.replace(temporary, self.rejects)


def _check_same_job(found: dict[str, Any], wanted: dict[str, Any], where: Path) -> None:
    changed = [
        f"{name}: {found.get(name)!r} -> {wanted.get(name)!r}"
        for name in sorted(set(found) | set(wanted))
        if found.get(name) != wanted.get(name)
    ]
    if changed:
        raise CorpusError(
            f"Cannot resume: {str(where)!r} holds a job with other settings or input ({'; '.join(changed)}). "
            "Rerun it as it was, or start over with --overwrite."
        )


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with temporary.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        raise OutputWriteError(f"Cannot write {str(path)!r}: {exc.strerror or exc}.") from exc
