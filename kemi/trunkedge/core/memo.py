"""Per-worker memory of answers whose inputs repeat (a PBX's calls carry the same facts).
Pure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


MAX_KEY_CHARS = 512
"""Inputs longer than this are not remembered (they come from the network: `limit` of
them must stay small)."""


class Bounded(Generic[K, V]):
    """At most `limit` answers; when full, all are forgotten at once (cheaper per call than
    an LRU's bookkeeping, and a flood of new inputs cannot grow it)."""

    __slots__ = ("answers", "limit")

    def __init__(self, limit: int) -> None:
        self.answers: dict[K, V] = {}
        self.limit = limit

    def get(self, key: K) -> V | None:
        return self.answers.get(key)

    def put(self, key: K, value: V) -> V:
        if len(self.answers) >= self.limit:
            self.answers.clear()
        self.answers[key] = value
        return value

    def of(self, key: K, compute: Callable[[K], V]) -> V:
        """The answer for `key`, computed once while it is remembered."""
        found = self.answers.get(key)
        return found if found is not None else self.put(key, compute(key))

    def __len__(self) -> int:
        return len(self.answers)
