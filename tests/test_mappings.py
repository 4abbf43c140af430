"""Room for new compiled programs: caches drop their least recently used programs near the mapping limit."""

import collections
import gc
import types
import weakref
from pathlib import Path

import numpy as np
import pytest

import pystiffsens as pss
from pystiffsens import _mappings
from pystiffsens.backends.compiled import Programs


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="no /proc: the mapping count is unknown here")
def test_the_mapping_count_and_limit_come_from_proc():
    assert 0 < _mappings.count() < _mappings.limit()


@pytest.mark.skipif(Path("/proc/self/maps").exists(), reason="/proc is here")
def test_without_proc_nothing_is_dropped():  # pragma: no cover - not Linux
    cache = collections.OrderedDict(a=1)
    assert _mappings.make_room(cache) == 0 and list(cache) == ["a"]


def _count_collections(monkeypatch) -> list:
    """Stand in for make_room's garbage collections (seconds each in a large process); returns their record."""
    collections_made: list = []
    monkeypatch.setattr(_mappings, "gc", types.SimpleNamespace(collect=lambda: collections_made.append(1)))
    return collections_made


def test_make_room_drops_the_least_recently_used_entries_until_there_is_room(monkeypatch):
    """Each entry holds 10 000 mappings (a stand-in count); the limit leaves room for two beside the reserve."""
    cache = collections.OrderedDict((name, object()) for name in "abcd")
    cache.move_to_end("a")  # used last: kept longest
    monkeypatch.setattr(_mappings, "count", lambda: 1000 + 10_000 * len(cache))
    monkeypatch.setattr(_mappings, "limit", lambda: 1000 + 20_000 + _mappings.RESERVE)
    collected = _count_collections(monkeypatch)
    assert _mappings.make_room(cache) == 2
    assert list(cache) == ["d", "a"]
    assert len(collected) == 1  # after the first drop, which left the process crowded; not after the second
    assert _mappings.make_room(cache) == 0 and len(collected) == 1


def test_crowded_front_door_and_petab_caches_keep_one_program_and_still_answer(monkeypatch):
    """Where the process is always short of mappings, each new program replaces the one before it."""
    native = pss.backends.get("jax")
    monkeypatch.setattr(native, "programs", Programs())  # this test's programs only: the worker's others stay
    problem = pss.problems.get("robertson", t_end=10.0)
    expected = {solver: pss.solve(problem, solver, rtol=1e-7, atol=1e-9).ys[-1] for solver in ("Rodas5P", "FBDF")}
    held = [weakref.ref(program.compiled) for program in native.programs._compiled.values()]
    monkeypatch.setattr(_mappings, "crowded", lambda: True)
    _count_collections(monkeypatch)  # make_room collects nothing here; the test collects once before it checks
    assert np.isfinite(pss.solve(problem, "KenCarp4", rtol=1e-7, atol=1e-9).ys[-1]).all()  # a new program
    assert len(native.programs._compiled) == 1
    gc.collect()
    assert all(ref() is None for ref in held)  # freed: no plan holds a dropped program
    for solver in ("Rodas5P", "FBDF"):  # dropped, compiled again: the same answers
        np.testing.assert_array_equal(pss.solve(problem, solver, rtol=1e-7, atol=1e-9).ys[-1], expected[solver])
        assert len(native.programs._compiled) == 1

    yaml = Path(__file__).parent / "data" / "petab" / "Boehm_JProteomeRes2014" / "Boehm_JProteomeRes2014.yaml"
    petab = pss.petab.load(yaml)
    nllh = [petab.nllh(solver=solver) for solver in ("Rodas5P", "FBDF", "Rodas5P")]
    assert len(petab._programs) == 1
    assert nllh[2] == nllh[0] and nllh[1] == pytest.approx(nllh[0], rel=1e-5)
