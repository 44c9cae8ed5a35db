"""``fastembed-adapter embed``: a corpus file into embeddings, with a progress bar, a summary and ``--resume``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .options import add_common_arguments, add_flag

__all__ = ["add_embed_arguments", "run_embed"]

DESCRIPTION = (
    "Embed a corpus (JSONL, CSV, Parquet or plain text, read as a stream) into Parquet, .npy or JSONL, a part at "
    "a time: a killed job continues with --resume and gives the same file. --engine ray runs it on Ray Data "
    "(extras 'batch' and 'ray')."
)
# Rows per part when --part-size is not given: a dense part of 10,000 x 384 float32 is 15 MB; ColBERT
# parts hold ~100x more numbers per text. On Ray a part is what one actor embeds at a time, so parts
# are smaller there, to keep every actor busy.
_PART_SIZE = {("local", "dense"): 10_000, ("local", "colbert"): 500, ("ray", "dense"): 1_000, ("ray", "colbert"): 100}


def add_embed_arguments(parser: argparse.ArgumentParser) -> None:
    """``embed`` flags, each with its ``FEA_*`` fallback."""

    def option(flag: str, **kwargs: Any) -> None:
        kwargs.setdefault("env", "FEA_EMBED_" + flag.lstrip("-").replace("-", "_").upper())
        add_flag(parser, flag, **kwargs)

    parser.add_argument("input", metavar="INPUT", help="corpus file: .jsonl, .csv, .parquet or .txt (one text a line)")
    option("--model", env="FEA_MODEL", required=True, help="folder written by `prepare` (or hub id with onnx/*.onnx)")
    option("--output", required=True, metavar="OUT", help="output file: .parquet (default), .npy or .jsonl")
    option("--input-format", choices=("jsonl", "csv", "parquet", "text"), help="input format (default: by suffix)")
    option("--format", choices=("parquet", "npy", "jsonl"), help="output format (default: by suffix, else parquet)")
    option("--text-column", default="text", help="column or JSON field holding the text (default text)")
    option("--id-column", help="column or JSON field holding an id to keep (default: the 0-based row number)")
    option(
        "--kind", choices=("auto", "dense", "colbert"), default="auto", help="model kind (default: from its configs)"
    )
    option("--file-name", help="ONNX file in the model folder (default: the INT8 file made for this CPU)")
    option("--batch-size", type=int, default=32, help="texts per ONNX Runtime call (default 32)")
    option(
        "--part-size",
        type=int,
        help="rows per part: the unit of --resume, of memory and of Ray's work (default 10000, ColBERT 500; "
        "--engine ray: 1000, ColBERT 100)",
    )
    option("--prompt-name", help="prompt from the model's config to prepend (dense models)")
    option("--normalize", switch=True, default=False, help="L2-normalise each embedding (dense models)")
    option("--truncate-dim", type=int, help="keep the first N dimensions (Matryoshka models)")
    option(
        "--precision",
        choices=("float32", "int8", "uint8", "binary", "ubinary"),
        default="float32",
        help="stored precision, as encode(precision=...); int8/uint8 calibrated on the first part (default float32)",
    )
    option("--queries", switch=True, default=False, help="ColBERT: embed the texts as queries (default: documents)")
    option("--pool-factor", type=int, default=1, help="ColBERT: token pooling factor, as PyLate (default 1: off)")
    option(
        "--on-bad-row",
        choices=("fail", "skip"),
        default="fail",
        help="a bad row stops the job, or goes to OUT.rejects.jsonl",
    )
    option("--resume", switch=True, default=False, help="continue an interrupted job after its last finished part")
    option("--overwrite", switch=True, default=False, help="replace an existing output (and unfinished parts)")
    option("--threads", type=int, help="ONNX Runtime threads (default: the CPUs this process may use)")
    option("--progress", switch=True, help="progress bar on stderr (default: when stderr is a terminal)")
    option("--json", switch=True, default=False, help="print the summary as JSON on stdout")
    option("--engine", choices=("local", "ray"), default="local", help="run here, or on Ray Data (extra 'ray')")
    option("--ray-address", help="Ray cluster to join, e.g. auto or ray://head:10001 (default: start a local Ray)")
    option("--actors", type=int, help="Ray: embedding actors (default: cluster CPUs / --cpus-per-actor)")
    option("--cpus-per-actor", type=int, default=1, help="Ray: CPUs (= ONNX Runtime threads) per actor (default 1)")
    add_common_arguments(parser)


def run_embed(args: argparse.Namespace) -> int:
    """Run the job; the summary goes to stderr (or stdout as JSON with ``--json``)."""
    from ..batch import EmbedSettings, JobOptions, Output, Source, embed_corpus

    kind = EmbedSettings.kind_of(args.model, args.kind)
    settings = EmbedSettings(
        model=args.model,
        kind=kind,
        file_name=args.file_name,
        batch_size=args.batch_size,
        prompt_name=args.prompt_name,
        normalize=args.normalize,
        truncate_dim=args.truncate_dim,
        precision=args.precision,
        is_query=args.queries,
        pool_factor=args.pool_factor,
    )
    options = JobOptions(
        part_size=args.part_size or _PART_SIZE[args.engine, kind],
        on_bad_row=args.on_bad_row,
        resume=args.resume,
        overwrite=args.overwrite,
    )
    source = Source.open(args.input, args.input_format, args.text_column, args.id_column)
    output = Output.of(args.output, args.format)
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    with _progress_bar(show, source.estimate_rows() if show else None) as progress:
        try:
            if args.engine == "ray":
                from ..ray import embed_on_ray

                summary = embed_on_ray(
                    source,
                    output,
                    settings,
                    options,
                    address=args.ray_address,
                    actors=args.actors,
                    cpus_per_actor=args.cpus_per_actor,
                    progress=progress,
                )
            else:
                summary = embed_corpus(source, output, settings, options, threads=args.threads, progress=progress)
        except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or SIGTERM (raised as SystemExit by the CLI)
            if output.parts_dir.is_dir() and args.engine == "local":
                sys.stderr.write(
                    f"\nembed: interrupted; the finished parts are in {output.parts_dir}: "
                    "run the same command with --resume to continue\n"
                )
            raise
    if args.json:
        sys.stdout.write(json.dumps(summary.as_json()) + "\n")
    else:
        resumed = f" (resumed after {summary.resumed_rows} rows)" if summary.resumed_rows else ""
        rejects = f", {summary.rejected} rejected -> {summary.rejects}" if summary.rejected else ""
        sys.stderr.write(
            f"embed: {summary.embedded} of {summary.rows} rows embedded{rejects} in {summary.seconds:.1f} s "
            f"({summary.texts_per_second:.1f} texts/s){resumed} -> {summary.output}\n"
        )
    return 0


class _progress_bar:
    """A tqdm bar of input rows with texts/s and ETA, opened at the first report (after resumed rows), or nothing."""

    def __init__(self, show: bool, total: int | None) -> None:
        self.show = show
        self.total = total
        self.bar: Any = None

    def __enter__(self) -> Any:
        if not self.show:
            return None

        def update(done: int, embedded: int) -> None:
            if self.bar is None:
                from tqdm.auto import tqdm

                self.bar = tqdm(
                    total=self.total, initial=done, unit="text", dynamic_ncols=True, smoothing=0.1, file=sys.stderr
                )
            self.bar.update(done - self.bar.n)

        return update

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
