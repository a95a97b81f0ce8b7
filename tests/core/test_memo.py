"""The per-worker memory of repeated answers: bounded, falsy answers remembered too."""

from __future__ import annotations

from trunkedge.core.memo import Bounded


def test_an_answer_is_computed_once_while_remembered_even_when_false() -> None:
    seen: list[str] = []
    memo: Bounded[str, bool] = Bounded(10)

    def compute(key: str) -> bool:
        seen.append(key)
        return key == "yes"

    assert [memo.of(k, compute) for k in ("no", "no", "yes", "yes")] == \
        [False, False, True, True]
    assert seen == ["no", "yes"]


def test_a_full_memory_forgets_everything_at_once() -> None:
    memo: Bounded[int, int] = Bounded(3)
    for i in range(3):
        memo.put(i, i)
    assert len(memo) == 3
    memo.put(99, 99)
    assert len(memo) == 1 and memo.get(0) is None and memo.get(99) == 99
