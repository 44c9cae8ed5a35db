"""A thread-safe LRU cache of sentence embeddings, bounded by entries and optionally bytes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from cachetools import LRUCache

from .errors import InvalidInputError

__all__ = ["CacheInfo", "EmbeddingCache"]


@dataclass(frozen=True)
class CacheInfo:
    """Counters of an :class:`EmbeddingCache`, like ``functools.lru_cache``'s ``cache_info()``."""

    hits: int
    misses: int
    size: int
    maxsize: int
    bytes: int
    max_bytes: int | None


class EmbeddingCache:
    """LRU of read-only vectors keyed by everything that changes them; ``maxsize=0`` disables it.

    Values are stored read-only and handed out as copies, so a caller mutating a result can
    never corrupt the cache.
    """

    def __init__(self, maxsize: int, max_bytes: int | None = None) -> None:
        """Keep at most ``maxsize`` vectors and, if given, ``max_bytes`` bytes of them."""
        for name, value in (("cache_size", maxsize), ("cache_max_bytes", max_bytes)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise InvalidInputError(f"{name} must be a non-negative int, got {value!r}.")
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        self._cache: LRUCache[Hashable, np.ndarray] = self._new()

    def _new(self) -> LRUCache[Hashable, np.ndarray]:
        if self.max_bytes is not None:
            return LRUCache(maxsize=self.max_bytes, getsizeof=lambda value: value.nbytes)
        return LRUCache(maxsize=max(self.maxsize, 1))

    @property
    def enabled(self) -> bool:
        """False when ``maxsize`` is 0."""
        return self.maxsize > 0

    def get_many(self, keys: Sequence[Hashable]) -> list[np.ndarray | None]:
        """Look up every key (a copy per hit, None per miss), counting hits and misses."""
        if not self.enabled:
            return [None] * len(keys)
        with self._lock:
            found = [self._cache.get(key) for key in keys]
            hits = sum(value is not None for value in found)
            self._hits += hits
            self._misses += len(keys) - hits
        return [None if value is None else value.copy() for value in found]

    def put_many(self, items: list[tuple[Hashable, np.ndarray]]) -> None:
        """Store vectors (copied, read-only), evicting the least recently used beyond the bounds."""
        if not self.enabled:
            return
        with self._lock:
            for key, value in items:
                stored = np.array(value, copy=True)
                stored.flags.writeable = False
                if self.max_bytes is not None and stored.nbytes > self.max_bytes:
                    continue  # larger than the whole cache
                self._cache[key] = stored
                while len(self._cache) > self.maxsize:
                    self._cache.popitem()

    def get_or_compute(
        self, keys: Sequence[Hashable], compute: Callable[[list[int]], list[np.ndarray]]
    ) -> tuple[list[np.ndarray], int, int]:
        """The value of every key: cached ones looked up, the others ``compute(their positions)`` and stored.

        A key missing more than once is computed once (at its first position) and every copy gets that
        value: a vector can move with its batch (INT8), and the cache holds one per key, so a later hit
        must equal every row this call returned for it.

        Returns the values in key order and the hit and miss counts (both 0 when the cache is disabled).
        """
        found = self.get_many(keys)
        missing = [index for index, value in enumerate(found) if value is None]
        if missing:
            first: dict[Hashable, int] = {}
            for index in missing:
                first.setdefault(keys[index], index)
            computed = dict(zip(first, compute(list(first.values())), strict=True))
            self.put_many(list(computed.items()))
            for index in missing:
                value = computed[keys[index]]
                found[index] = value if first[keys[index]] == index else value.copy()
        values = [value for value in found if value is not None]
        if not self.enabled:
            return values, 0, 0
        return values, len(keys) - len(missing), len(missing)

    def info(self) -> CacheInfo:
        """Hits, misses and current size."""
        with self._lock:
            return CacheInfo(
                hits=self._hits,
                misses=self._misses,
                size=len(self._cache),
                maxsize=self.maxsize,
                bytes=sum(value.nbytes for value in self._cache.values()),
                max_bytes=self.max_bytes,
            )

    def clear(self) -> None:
        """Drop every entry and reset the counters."""
        with self._lock:
            self._cache = self._new()
            self._hits = self._misses = 0
