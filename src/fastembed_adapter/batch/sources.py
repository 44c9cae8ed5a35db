"""A corpus read as a stream of rows: JSONL, CSV, Parquet or plain text, never the whole file in memory.

Parquet and CSV are read by pyarrow, a record batch at a time; a CSV line with the wrong number of
fields is a bad row named by its text (pyarrow's streaming reader does not know its line number).
JSONL and text are read a line at a time by the standard library: pyarrow's JSON reader fails a
whole block on one bad line and cannot say which, and a bad row must be named by its line. Each
entry is a :class:`Row` or a :class:`BadRow` with ``row``, the 0-based index of the record in the
input; a job can stop after any entry and resume by skipping as many entries.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any

from ..errors import CorpusError

__all__ = ["BadRow", "InputFormat", "Row", "Source"]

_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "text",
    ".text": "text",
}
_ARROW_BATCH_ROWS = 4096
_CSV_BLOCK_BYTES = 1 << 20


class InputFormat(str, Enum):
    """The corpus formats ``embed`` reads."""

    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"
    TEXT = "text"

    @classmethod
    def of(cls, path: Path, given: str | None = None) -> InputFormat:
        """``given``, else the format ``path``'s suffix names: .jsonl or .ndjson, .csv, .parquet, .txt."""
        name = given or _SUFFIXES.get(path.suffix.lower())
        if name is None:
            raise CorpusError(
                f"Cannot tell the format of {str(path)!r} from its suffix {path.suffix!r}: pass --input-format "
                f"({', '.join(item.value for item in cls)}), or name it .jsonl, .csv, .parquet or .txt."
            )
        try:
            return cls(name)
        except ValueError:
            choices = ", ".join(item.value for item in cls)
            raise CorpusError(f"Unknown input format {name!r}. Valid formats: {choices}.") from None


@dataclasses.dataclass(frozen=True, slots=True)
class Row:
    """A text to embed: its 0-based record index, its id (the index when there is no id column) and the text."""

    row: int
    id: Any
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class BadRow:
    """A record that cannot be embedded, where it is (``line`` 1-based where the format has lines) and why."""

    row: int | None
    line: int | None
    reason: str

    def where(self) -> str:
        """``line 7`` or ``row 6``, as the user would look for it (a malformed CSV line: by its text, in the reason)."""
        if self.line is not None:
            return f"line {self.line}"
        return f"row {self.row}" if self.row is not None else "a malformed line"

    def as_json(self) -> dict[str, Any]:
        """The rejects file's record."""
        return {"row": self.row, "line": self.line, "reason": self.reason}


Entry = Row | BadRow


@dataclasses.dataclass(frozen=True)
class Source:
    """A corpus file, its format and the columns holding the text and (optionally) the id."""

    path: Path
    format: InputFormat
    text_column: str = "text"
    id_column: str | None = None

    @classmethod
    def open(
        cls, path: str | Path, input_format: str | None = None, text_column: str = "text", id_column: str | None = None
    ) -> Source:
        """Check the file exists and its format is known; columns are checked when reading starts."""
        path = Path(path)
        if not path.is_file():
            what = "a folder, not a file" if path.is_dir() else "not found"
            raise CorpusError(f"Input {str(path)!r} is {what}.")
        fmt = InputFormat.of(path, input_format)
        if fmt is InputFormat.TEXT and id_column is not None:
            raise CorpusError("A plain-text corpus has no columns: --id-column needs JSONL, CSV or Parquet input.")
        return cls(path, fmt, text_column, id_column)

    @property
    def key(self) -> str:
        """The output column holding each row's id: the id column's name, else ``row``."""
        return self.id_column or "row"

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this input for ``--resume``: path, size, modification time, format, columns."""
        stat = self.path.stat()
        return {
            "input": str(self.path.resolve()),
            "input_bytes": stat.st_size,
            "input_mtime_ns": stat.st_mtime_ns,
            "input_format": self.format.value,
            "text_column": self.text_column,
            "id_column": self.id_column,
        }

    def estimate_rows(self) -> int | None:
        """Rows in the input for the progress bar: exact for Parquet, the line count for the others."""
        if self.format is InputFormat.PARQUET:
            import pyarrow.parquet as pq

            try:
                return int(pq.ParquetFile(self.path).metadata.num_rows)
            except Exception:  # reading it will report the damage with a clear message
                return None
        lines, last = 0, b"\n"
        with self.path.open("rb") as file:
            while chunk := file.read(1 << 20):
                lines += chunk.count(b"\n")
                last = chunk
        if not last.endswith(b"\n"):
            lines += 1
        return max(lines - (self.format is InputFormat.CSV), 0)

    def entries(self) -> Iterator[Entry]:
        """Every record in input order, good or bad; an unreadable file raises ``CorpusError`` naming it."""
        readers = {
            InputFormat.JSONL: self._jsonl,
            InputFormat.TEXT: self._text,
            InputFormat.CSV: self._csv,
            InputFormat.PARQUET: self._parquet,
        }
        try:
            yield from readers[self.format]()
        except OSError as exc:
            raise CorpusError(f"Cannot read {str(self.path)!r}: {exc.strerror or exc}.") from exc

    # -- line formats (stdlib) -----------------------------------------------------------------------

    def _lines(self) -> Iterator[tuple[int, str | None]]:
        """``(line number, text)``; text None for a line that is not UTF-8."""
        with self.path.open("rb") as file:
            for number, raw in enumerate(file, start=1):
                try:
                    yield number, raw.decode("utf-8").removesuffix("\n").removesuffix("\r")
                except UnicodeDecodeError:
                    yield number, None

    def _text(self) -> Iterator[Entry]:
        for number, text in self._lines():
            row = number - 1
            if text is None:
                yield BadRow(row, number, "not valid UTF-8")
            else:
                yield Row(row, row, text)

    def _jsonl(self) -> Iterator[Entry]:
        id_type: type | None = None
        row = 0
        for number, line in self._lines():
            if line is not None and not line.strip():
                continue  # a blank line holds no record
            entry = self._json_record(row, number, line, id_type)
            if isinstance(entry, Row) and self.id_column is not None:
                id_type = id_type or type(entry.id)
            yield entry
            row += 1

    def _json_record(self, row: int, number: int, line: str | None, id_type: type | None) -> Entry:
        if line is None:
            return BadRow(row, number, "not valid UTF-8")
        try:
            record = json.loads(line)
        except ValueError as exc:
            return BadRow(row, number, f"not valid JSON ({exc})")
        if not isinstance(record, dict):
            return BadRow(row, number, f"a JSON {type(record).__name__}, not an object")
        reason = _text_problem(record, self.text_column)
        if reason is not None:
            return BadRow(row, number, reason)
        key: Any = row
        if self.id_column is not None:
            key = record.get(self.id_column)
            reason = _id_problem(key, self.id_column, id_type)
            if reason is not None:
                return BadRow(row, number, reason)
        return Row(row, key, record[self.text_column])

    # -- columnar formats (pyarrow) ------------------------------------------------------------------

    def _columns(self) -> list[str]:
        return [self.text_column] + ([self.id_column] if self.id_column else [])

    def _csv(self) -> Iterator[Entry]:
        import pyarrow as pa
        import pyarrow.csv as pcsv

        malformed: list[BadRow] = []

        def invalid_row(found: Any) -> str:
            # pyarrow's streaming reader does not know line numbers (``found.number`` is None): the text says which
            fields = f"{found.actual_columns} fields where the header has {found.expected_columns}"
            malformed.append(BadRow(None, found.number, f"{fields}: {found.text[:200]!r}"))
            return "skip"

        types = {name: pa.string() for name in self._columns()}
        try:
            reader = pcsv.open_csv(
                self.path,
                read_options=pcsv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
                parse_options=pcsv.ParseOptions(newlines_in_values=True, invalid_row_handler=invalid_row),
                convert_options=pcsv.ConvertOptions(column_types=types, include_columns=self._columns()),
            )
        except (pa.ArrowInvalid, pa.ArrowKeyError) as exc:
            raise self._unreadable(exc) from exc
        row = 0
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowInvalid as exc:
                raise self._unreadable(exc) from exc
            yield from malformed  # a malformed line is not a record: it takes no row index
            malformed.clear()
            for entry in self._arrow_rows(batch, row):
                yield entry
                row += 1
        yield from malformed

    def _parquet(self) -> Iterator[Entry]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            file = pq.ParquetFile(self.path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise self._unreadable(exc) from exc
        names = file.schema_arrow.names
        for name in self._columns():
            if name not in names:
                raise CorpusError(f"{str(self.path)!r} has no column {name!r}; its columns: {', '.join(names)}.")
        kind = file.schema_arrow.field(self.text_column).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise CorpusError(f"Column {self.text_column!r} of {str(self.path)!r} holds {kind}, not strings.")
        row = 0
        try:
            for batch in file.iter_batches(batch_size=_ARROW_BATCH_ROWS, columns=self._columns()):
                for entry in self._arrow_rows(batch, row):
                    yield entry
                    row += 1
        except (pa.ArrowInvalid, OSError) as exc:
            raise self._unreadable(exc) from exc

    def _arrow_rows(self, batch: Any, first: int) -> Iterator[Entry]:
        texts = batch.column(self.text_column).to_pylist()
        ids = batch.column(self.id_column).to_pylist() if self.id_column else None
        for index, text in enumerate(texts):
            row = first + index
            if text is None:
                yield BadRow(row, None, f"{self.text_column!r} is null")
            elif ids is not None and ids[index] is None:
                yield BadRow(row, None, f"{self.id_column!r} is null")
            else:
                yield Row(row, ids[index] if ids is not None else row, text)

    def _unreadable(self, exc: Exception) -> CorpusError:
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        if "include_columns" in reason or "not found" in reason.lower() or "no column" in reason.lower():
            return CorpusError(
                f"{str(self.path)!r} lacks a column this job reads ({', '.join(self._columns())}): {reason}"
            )
        return CorpusError(f"Cannot read {str(self.path)!r} as {self.format.value}: {reason}")


def _text_problem(record: dict[str, Any], column: str) -> str | None:
    if column not in record:
        return f"no {column!r} field"
    text = record[column]
    if text is None:
        return f"{column!r} is null"
    if not isinstance(text, str):
        return f"{column!r} is a {type(text).__name__}, not a string"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"{column!r} holds a lone surrogate U+{ord(text[exc.start]):04X} at character {exc.start}"
    return None


def _id_problem(value: Any, column: str, expected: type | None) -> str | None:
    if value is None:
        return f"no {column!r} field, or it is null"
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return f"{column!r} is a {type(value).__name__}; ids must be strings or integers"
    if expected is not None and type(value) is not expected:
        return f"{column!r} is a {type(value).__name__}, the earlier ids are {expected.__name__}s"
    return None
