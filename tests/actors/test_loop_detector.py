"""The loop detector's transitions, tested synchronously (no event loop)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_cache.actors.loop_detector import LoopDetector, LoopEvent, LoopLimits, ToolSite

GET = ToolSite(1, "get_cart", "get_cart", reads=("cart",))
ADD = ToolSite(2, "add_to_cart", "add_to_cart", writes=("cart",))
SEARCH = ToolSite(3, "search", "search", reads=("web",))
SITES = {"get": GET, "add": ADD, "search": SEARCH}


def run(calls: Sequence[tuple[ToolSite, Hashable]], **limits: object) -> list[LoopEvent | None]:
    detector = LoopDetector(LoopLimits(**limits), "s1")  # type: ignore[arg-type]
    return [detector.record(site, key) for site, key in calls]


def kinds(events: Sequence[LoopEvent | None]) -> list[str | None]:
    return [e.kind if e is not None else None for e in events]


def test_the_sixth_identical_read_is_a_repeat() -> None:
    events = run([(GET, ("u1",))] * 6)
    assert kinds(events) == [None] * 5 + ["repeat"]
    last = events[-1]
    assert last is not None
    assert (last.tool, last.arguments, last.count, last.limit, last.position) == (
        "get_cart",
        ("u1",),
        6,
        5,
        5,
    )
    assert last.message == (
        "tool 'get_cart' called 6 times with the same arguments and no write in between (limit: 5)"
    )


def test_a_write_restarts_the_repeat_count_of_its_resource_only() -> None:
    calls: list[tuple[ToolSite, Hashable]] = []
    for i in range(7):
        calls += [(GET, ("u1",))] * 5 + [(SEARCH, ("q",)), (ADD, ("u1", i))]
    events = run(calls, max_depth=1000)
    # get_cart never exceeds 5 between writes; search (another resource) does,
    # on its 6th and 7th call.
    found = [e for e in events if e is not None]
    assert [(e.kind, e.tool, e.count) for e in found] == [
        ("repeat", "search", 6),
        ("repeat", "search", 7),
    ]


def test_different_arguments_are_different_calls() -> None:
    assert kinds(run([(GET, (f"u{i}",)) for i in range(20)])) == [None] * 20


def test_depth_budget() -> None:
    events = run([(GET, (i,)) for i in range(4)], max_depth=3)
    assert kinds(events) == [None, None, None, "depth"]
    assert events[-1] is not None and events[-1].message == (
        "execution depth exceeded: 4 calls > 3"
    )


def test_read_write_with_new_arguments_is_progress_not_a_cycle() -> None:
    calls = [(GET, ("u1",)), (ADD, ("u1", "x")), (GET, ("u1",)), (ADD, ("u1", "y"))]
    assert kinds(run(calls)) == [None] * 4


def test_the_same_pair_with_the_same_arguments_is_a_cycle() -> None:
    calls = [(GET, ("u1",)), (ADD, ("u1", "x"))] * 2
    events = run(calls)
    assert kinds(events) == [None, None, None, "cycle"]
    assert events[-1] is not None
    assert events[-1].pattern == ("get_cart", "add_to_cart")
    assert (
        events[-1].message
        == "cycle get_cart -> add_to_cart repeated 2 times with the same arguments"
    )


def test_longer_cycles_and_cycle_repeats() -> None:
    pattern = [(GET, (1,)), (SEARCH, ("a",)), (GET, (1,)), (ADD, (1,))]
    assert kinds(run(pattern * 2))[-1] == "cycle"
    assert kinds(run(pattern * 2, cycle_repeats=3)) == [None] * 8
    assert kinds(run(pattern * 3, cycle_repeats=3))[-1] == "cycle"
    # Patterns longer than max_cycle are not looked for.
    assert "cycle" not in kinds(run(pattern * 2, max_cycle=3))


def test_a_long_run_of_one_call_is_a_repeat_never_a_cycle() -> None:
    events = run([(GET, (1,))] * 40, max_repeats=100)
    assert kinds(events) == [None] * 40


def test_a_window_forgets_old_repeats() -> None:
    calls: list[tuple[ToolSite, Hashable]] = []
    for i in range(30):
        calls += [(GET, ("u1",)), (SEARCH, (i,)), (SEARCH, (i, "b")), (SEARCH, (i, "c"))]
    assert "repeat" in kinds(run(calls, max_depth=1000))
    assert "repeat" not in kinds(run(calls, max_depth=1000, window=8))


def test_per_tool_repeat_overrides() -> None:
    events = run([(SEARCH, ("q",))] * 9, tool_repeats={"search": 8})
    assert kinds(events) == [None] * 8 + ["repeat"]


def test_blocked_tools_keep_being_refused() -> None:
    detector = LoopDetector(LoopLimits(), "s1")
    detector.block(GET.tool_id)
    event = detector.record(GET, ("new",))
    assert event is not None and event.kind == "blocked"
    assert detector.record(SEARCH, ("q",)) is None


def test_tracked_calls_are_bounded() -> None:
    detector = LoopDetector(LoopLimits(max_depth=10**9, max_tracked=100), "s1")
    for i in range(10_000):
        detector.record(GET, (i,))
    assert detector.tracked == 100
    assert len(detector._history) < 2 * detector._history_keep


# -- property: verdicts equal a simple reference model ------------------------


def reference(calls: Sequence[tuple[str, Hashable]], limits: LoopLimits) -> list[str | None]:
    """A direct, quadratic transcription of the rules in loop_detector's docstring."""
    verdicts: list[str | None] = []
    history: list[tuple[str, Hashable]] = []
    epochs: dict[str, int] = {}
    seen_epoch: list[int] = []
    for name, key in calls:
        site = SITES[name]
        for r in site.writes:
            epochs[r] = epochs.get(r, 0) + 1
        epoch = sum(epochs.get(r, 0) for r in site.reads)
        history.append((name, key))
        seen_epoch.append(epoch)
        n = len(history)
        count = sum(1 for i in range(n) if history[i] == (name, key) and seen_epoch[i] == epoch)
        if n > limits.max_depth:
            verdicts.append("depth")
            continue
        if count > limits.max_repeats:
            verdicts.append("repeat")
            continue
        cycle = False
        k = limits.cycle_repeats
        for p in range(2, limits.max_cycle + 1):
            if n < k * p:
                break
            tail = history[n - k * p :]
            block = tail[:p]
            if tail == block * k and len(set(block)) >= 2:
                cycle = True
                break
        verdicts.append("cycle" if cycle else None)
    return verdicts


calls_strategy = st.lists(st.tuples(st.sampled_from(sorted(SITES)), st.integers(0, 2)), max_size=60)


@given(
    calls=calls_strategy,
    max_repeats=st.integers(1, 4),
    max_cycle=st.integers(1, 6),
    cycle_repeats=st.integers(2, 3),
)
def test_verdicts_match_the_reference_model(
    calls: list[tuple[str, int]], max_repeats: int, max_cycle: int, cycle_repeats: int
) -> None:
    limits = LoopLimits(
        max_repeats=max_repeats, max_depth=40, max_cycle=max_cycle, cycle_repeats=cycle_repeats
    )
    detector = LoopDetector(limits, "s")
    got = [detector.record(SITES[name], (key,)) for name, key in calls]
    expected = reference([(name, (key,)) for name, key in calls], limits)
    assert kinds(got) == expected


@pytest.mark.parametrize("n", [1_000, 20_000])
def test_memory_stays_bounded_however_long_the_session(n: int) -> None:
    detector = LoopDetector(LoopLimits(max_depth=10**9, max_tracked=512), "s")
    for i in range(n):
        detector.record(SITES[("get", "add", "search")[i % 3]], (i % 1000,))
    assert detector.tracked <= 512
    assert len(detector._history) < 2 * detector._history_keep
