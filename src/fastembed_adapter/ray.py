"""The corpus job on Ray Data (extra ``ray``): an embedder class for ``map_batches``, and ``embed --engine ray``.

With a Ray dataset of your own::

    import ray
    from ray.data import ActorPoolStrategy
    from fastembed_adapter.ray import Embedder

    ds = ray.data.read_parquet("s3://bucket/passages/")              # a column "text"
    ds = ds.map_batches(
        Embedder,
        fn_constructor_kwargs={"model": "/shared/models/all-MiniLM-L6-v2-onnx", "normalize": True},
        compute=ActorPoolStrategy(size=8), num_cpus=4,                # 8 actors of 4 ORT threads
        batch_size=512, batch_format="pyarrow",
    )
    ds.write_parquet("s3://bucket/embeddings/")                       # the rows with an "embedding" column

Each actor loads the model once, with as many ONNX Runtime threads as the CPUs Ray gave it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import CorpusError, InvalidInputError
from .extras import require_extra

require_extra("ray")

from .batch.embedding import EmbedSettings, to_arrow  # noqa: E402
from .batch.job import (  # noqa: E402
    JobOptions,
    PartBuilder,
    Summary,
    bad_row_error,
    check_output,
    job_identity,
    key_type,
    parts_of,
    with_metadata,
)
from .batch.output import Output, PartRecord  # noqa: E402
from .batch.sources import BadRow, Source  # noqa: E402

if TYPE_CHECKING:
    import pyarrow as pa

    from .batch.job import Progress

__all__ = ["Embedder", "embed_on_ray"]


def _actor_cpus() -> int | None:
    """The CPUs Ray assigned to this actor or task (None outside Ray, or when it assigned none)."""
    import ray

    if not ray.is_initialized():
        return None
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")  # type: ignore[no-untyped-call]
    return max(1, round(cpus)) if cpus else None


class Embedder:
    """A callable class for ``ray.data.Dataset.map_batches``: the batch with an embedding column appended.

    Takes a ``pyarrow.Table`` (``batch_format="pyarrow"``) or a dict of numpy arrays / pandas frame,
    and returns a ``pyarrow.Table``: the input columns plus ``output_column``, a fixed-size list of
    float32 per row (ColBERT: a list of per-token lists). A null or non-string text raises
    ``CorpusError`` naming its index in the batch (and its id with ``id_column``).
    """

    def __init__(
        self,
        model: str,
        *,
        text_column: str = "text",
        output_column: str = "embedding",
        id_column: str | None = None,
        kind: str = "auto",
        file_name: str | None = None,
        batch_size: int = 32,
        prompt_name: str | None = None,
        normalize: bool = False,
        truncate_dim: int | None = None,
        precision: str = "float32",
        ranges: Any = None,
        is_query: bool = False,
        pool_factor: int = 1,
        threads: int | None = None,
    ) -> None:
        """Load the model once per actor; ``threads`` default: the CPUs Ray gave this actor.

        ``precision="int8"``/``"uint8"`` needs ``ranges`` (``(2, dim)`` min/max, e.g. from a sample's
        float32 embeddings): ranges computed batch by batch would bucket every batch differently.
        """
        self.settings = EmbedSettings(
            model=model,
            kind=EmbedSettings.kind_of(model, kind),
            file_name=file_name,
            batch_size=batch_size,
            prompt_name=prompt_name,
            normalize=normalize,
            truncate_dim=truncate_dim,
            precision=precision,
            is_query=is_query,
            pool_factor=pool_factor,
        )
        if self.settings.needs_ranges() and ranges is None:
            raise InvalidInputError(
                f"precision {precision!r} needs ranges=(2, dim) min/max from a sample of float32 embeddings: "
                "ranges computed per batch would bucket every batch differently."
            )
        self.ranges = None if ranges is None else np.asarray(ranges, dtype=np.float32)
        self.text_column, self.output_column, self.id_column = text_column, output_column, id_column
        self.encoder = self.settings.load(threads or _actor_cpus())
        self.width = self.settings.width(self.encoder)

    def __call__(self, batch: Any) -> pa.Table:
        """Embed ``batch``'s texts; the rows keep their order."""
        import pyarrow as pa

        table = (
            batch
            if isinstance(batch, pa.Table)
            else pa.Table.from_pandas(batch)
            if hasattr(batch, "iloc")
            else pa.table(batch)
        )
        if self.text_column not in table.column_names:
            raise CorpusError(
                f"The batch has no column {self.text_column!r}; its columns: {', '.join(table.column_names)}."
            )
        texts = table.column(self.text_column).to_pylist()
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                where = f"row {index} of the batch"
                if self.id_column is not None and self.id_column in table.column_names:
                    where += f" ({self.id_column}={table.column(self.id_column)[index].as_py()!r})"
                what = "null" if text is None else f"a {type(text).__name__}, not a string"
                raise CorpusError(f"{where}: {self.text_column!r} is {what}.")
        # In the local job's windows, so a part embedded here equals the local job's (INT8 rows depend on their batch)
        vectors = self.settings.embed_all(self.encoder, texts)
        finished = self.settings.finish(vectors, self.ranges)
        return table.append_column(self.output_column, to_arrow(self.settings, finished, self.width))


def _start_ray(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    from .cpu import available_cpus

    kwargs: dict[str, Any] = {"address": address} if address else {"num_cpus": available_cpus()}
    ray.init(
        **kwargs,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
        ignore_reinit_error=True,
    )
    import ray.data

    logging.getLogger("ray.data").setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # parts come back in input order
    context.enable_progress_bars = False  # the job draws its own
    context.print_on_execution_start = False


def embed_on_ray(
    source: Source,
    output: Output,
    settings: EmbedSettings,
    options: JobOptions | None = None,
    *,
    address: str | None = None,
    actors: int | None = None,
    cpus_per_actor: int = 1,
    progress: Progress | None = None,
) -> Summary:
    """The ``embed`` job with the embedding done by a pool of Ray actors; the same output as :func:`embed_corpus`.

    The driver streams the input once, as the local job does (the same bad-row handling and row
    numbers), into Ray's object store a part at a time; a pool of actors embeds the parts, and the
    driver writes the results in input order and merges them into ``OUT``, as the local job does.
    Only the driver reads the input and writes the output: on a cluster they need not be shared.
    """
    import time

    import pyarrow as pa

    options = options or JobOptions()
    if options.resume:
        raise InvalidInputError("--resume continues a local job; a Ray job runs again from the start (--overwrite).")
    for name, value in (("actors", actors), ("cpus_per_actor", cpus_per_actor)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InvalidInputError(f"{name} must be a positive int, got {value!r}.")
    check_output(output, settings)
    started = time.perf_counter()
    state = output.begin(job_identity(source, output, settings, options), False, options.overwrite)
    _start_ray(address)
    import ray
    import ray.data

    shards = _stage(source, output, state, options, key_type(source))

    if actors is None:
        actors = max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus_per_actor)  # type: ignore[no-untyped-call]
    done = state.rows
    if progress is not None:
        progress(state.rejected, 0)
    embedded = 0
    builder: PartBuilder | None = None
    if shards:
        dataset = ray.data.from_arrow_refs(shards).map_batches(
            Embedder,
            fn_constructor_kwargs={"model": settings.model, **_actor_settings(settings)},
            batch_size=None,  # one staged part per call: the same rows, chunked the same way, as the local job
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=cpus_per_actor,
        )
        pending: list[pa.Table] = []
        batch: Any
        for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            if builder is None:
                width = batch.schema.field("embedding").type.list_size if settings.kind == "dense" else _width(batch)
                builder = PartBuilder(settings, state, source.key, key_type(source), _stored_width(settings, width))
            pending.append(batch)
            if sum(table.num_rows for table in pending) >= options.part_size:
                embedded += _write(output, state, builder, pa.concat_tables(pending), source.key)
                pending = []
            if progress is not None:
                progress(state.rejected + embedded + sum(table.num_rows for table in pending), embedded)
        if pending and builder is not None:
            embedded += _write(output, state, builder, pa.concat_tables(pending), source.key)
    if builder is None:  # nothing to embed: the schema still names the columns
        encoder = settings.load(1)
        builder = PartBuilder(settings, state, source.key, key_type(source), settings.width(encoder))
    if progress is not None:
        progress(done, embedded)
    output.finish(state, with_metadata(builder.schema, settings, state, source), source.key)
    return Summary.of(output, state, started, 0, 0, "ray")


def _actor_settings(settings: EmbedSettings) -> dict[str, Any]:
    """The actors compute float32 (precision is applied by the driver, with the job's int8 ranges)."""
    return {
        "kind": settings.kind,
        "file_name": settings.file_name,
        "batch_size": settings.batch_size,
        "prompt_name": settings.prompt_name,
        "normalize": settings.normalize,
        "truncate_dim": settings.truncate_dim,
        "is_query": settings.is_query,
        "pool_factor": settings.pool_factor,
    }


def _width(batch: pa.Table) -> int:
    return int(batch.schema.field("embedding").type.value_type.list_size)


def _stored_width(settings: EmbedSettings, width: int) -> int:
    return -(-width // 8) if settings.precision.endswith("binary") else width


def _write(output: Output, state: Any, builder: PartBuilder, table: pa.Table, key: str) -> int:
    """One output part from the actors' float32 rows, the job's precision applied here."""
    column = table.column("embedding").combine_chunks()
    if builder.settings.kind == "colbert":
        vectors: Any = [
            np.asarray(matrix, dtype=np.float32).reshape(-1, builder.width) for matrix in column.to_pylist()
        ]
    else:
        vectors = column.flatten().to_numpy().reshape(table.num_rows, -1)
    part = builder.table(table.column(key).to_pylist(), vectors)
    output.write_part(state, PartRecord(f"part-{len(state.parts):05d}", 0, table.num_rows, 0), part, [])
    return int(table.num_rows)


def _stage(source: Source, output: Output, state: Any, options: JobOptions, kind: Any) -> list[Any]:
    """Stream the input into the object store as Arrow tables of ``key, text``, bad rows handled as the local job does.

    Ray Data reads them with ``from_arrow_refs``: no file listing task to compete with the actors for
    CPUs, and no shared storage needed for the input on a cluster.
    """
    import pyarrow as pa
    import ray

    refs = []
    schema = pa.schema([(source.key, kind), ("text", pa.string())])
    for index, part in enumerate(parts_of(source.entries(), options.part_size)):
        rows, rejects = [], []
        for entry in part:
            if isinstance(entry, BadRow):
                if options.on_bad_row == "fail":
                    raise bad_row_error(source, entry)
                rejects.append(entry.as_json())
            else:
                rows.append(entry)
        if rows:
            keys = pa.array([row.id for row in rows], kind)
            refs.append(ray.put(pa.table([keys, pa.array([row.text for row in rows])], schema=schema)))
        output.write_part(state, PartRecord(f"input-{index:05d}", len(part), 0, len(rejects)), None, rejects)
    return refs
