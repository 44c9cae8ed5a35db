"""The benchmark's texts, deterministic for a given size.

Short queries (batch-1 latency, and the retrieval queries), short sentences and long passages
(throughput, and the retrieval corpus).

The vocabulary is the one ``prepare`` validates with; the combinations and seeds differ, so
the benchmark does not re-measure the validation texts.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import texts

__all__ = ["Workload", "build_workload"]

_SEED = 20240611
_PLACES = ["in Lisbon", "near the harbour", "at the night market", "in the data centre", "on the north ridge"]
_TIMES = ["last winter", "on Tuesday", "after the storm", "before the audit", "during the strike"]
_CLAUSES = [
    "because the budget was cut",
    "although nobody had asked for it",
    "while the press was watching",
    "so that the night shift could rest",
    "after three failed attempts",
]
_QUESTIONS = ["why did", "when did", "how often has", "who said", "where did"]


class _Writer:
    """Builds texts from the built-in vocabulary (:mod:`fastembed_adapter.texts`)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.subjects = texts.SUBJECTS
        self.verbs = texts.VERBS
        self.objects = texts.OBJECTS
        self.queries = texts.QUERIES
        self.numbers = texts.NUMBERS

    def sentence(self) -> str:
        rng = self.rng
        parts = [rng.choice(self.subjects), rng.choice(self.verbs), rng.choice(self.objects)]
        if rng.random() < 0.5:
            parts.append(rng.choice(_PLACES))
        if rng.random() < 0.5:
            parts.append(rng.choice(_TIMES))
        if rng.random() < 0.3:
            parts.append(rng.choice(_CLAUSES))
        return " ".join(parts) + "."

    def query(self) -> str:
        rng = self.rng
        if rng.random() < 0.3:
            return rng.choice(self.queries)
        subject = rng.choice(self.subjects).lower()
        return f"{rng.choice(_QUESTIONS)} {subject} {rng.choice(self.verbs)} {rng.choice(self.objects)}"

    def passage(self, min_words: int) -> str:
        words = self.rng.randint(min_words, min_words + 160)
        parts: list[str] = []
        while sum(len(part.split()) for part in parts) < words:
            parts.append(self.sentence())
            if self.rng.random() < 0.2:
                parts.append(self.rng.choice(self.numbers))
        return " ".join(parts)


@dataclass(frozen=True)
class Workload:
    """The texts every backend encodes, in this order."""

    queries: list[str]  # batch-1 latency, after warm-up; also the retrieval queries
    warmup: list[str]
    short: list[str]  # throughput on short sentences; also half of the retrieval corpus
    long: list[str]  # throughput on long passages (>= 256 tokens before truncation)

    def save(self, path: Path) -> None:
        """Write the workload as JSON (the workers read it)."""
        path.write_text(json.dumps(asdict(self)), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Workload:
        """Read a workload written by :meth:`save`."""
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(**{name: list(data[name]) for name in ("queries", "warmup", "short", "long")})


def build_workload(queries: int, short: int, long: int, warmup: int, long_words: int = 320) -> Workload:
    """Deterministic texts, distinct while the template space allows; long passages have 320+ words."""
    writer = _Writer(_SEED)
    seen: set[str] = set()

    def distinct(make: Callable[[], str], count: int) -> list[str]:
        out: list[str] = []
        for attempt in range(100 * count + 100):
            text = make()
            if text not in seen or attempt >= 50 * count:  # the template space is finite
                seen.add(text)
                out.append(text)
            if len(out) == count:
                break
        return out

    return Workload(
        queries=distinct(writer.query, queries),
        warmup=distinct(writer.query, warmup),
        short=distinct(writer.sentence, short),
        long=distinct(lambda: writer.passage(long_words), long),
    )
