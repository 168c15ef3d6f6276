"""A losing bidder re-runs the draw: an independent §8 implementation must agree.

The ``Rerun*`` code below is written from PROTOCOL.md §8 and §1 alone, with hashlib and
json only; it deliberately shares nothing with ``trading.draw`` (not even the sort key or
the canonical JSON helper). Hypothesis then checks both agree on seeds, eligible-list
hashes and committees, shortages included, for many random pools.
"""
from __future__ import annotations

import hashlib
import json

from hypothesis import HealthCheck, given, settings, strategies as st

from trading import draw as project


# --------------------------------------------------------------------------- re-run, §8 only

def rerun_canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def rerun_seed(platform_secret: bytes, supervisor_secret: bytes, closing_root: bytes,
               request: dict) -> bytes:
    return hashlib.sha256(b"ebid/v1 draw\n" + platform_secret + supervisor_secret
                          + closing_root + rerun_canonical(request)).digest()


def rerun_values(seed: bytes):
    counter = 0
    while True:
        block = hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        for offset in range(0, 32, 8):
            yield int.from_bytes(block[offset:offset + 8], "big")
        counter += 1


def rerun_pick(values, m: int) -> int:
    limit = 2**64 - (2**64 % m)
    v = next(values)
    while v >= limit:
        v = next(values)
    return v % m


def rerun_draw(seed: bytes, lists: list[list[str]], counts: list[int]):
    """Return (groups, alternates), or ("short", index) when a slot has no candidate."""
    values = rerun_values(seed)
    taken: list[str] = []
    out: list[list[str]] = []
    for index, (candidates, count) in enumerate(zip(lists, counts)):
        picks = []
        for _slot in range(count):
            left = [c for c in candidates if c not in taken]
            if not left:
                return ("short", index)
            chosen = left[rerun_pick(values, len(left))]
            picks.append(chosen)
            taken.append(chosen)
        out.append(picks)
    return (out[:-1], out[-1])


def rerun_lists(pool: dict[str, set[int]], groups: int) -> list[list[str]]:
    """§8 eligible lists from expert → groups it qualifies for; sorted by UTF-8 bytes."""
    lists = [sorted((e for e, gs in pool.items() if g in gs), key=lambda s: s.encode())
             for g in range(groups)]
    lists.append(sorted({e for lst in lists for e in lst}, key=lambda s: s.encode()))
    return lists


# --------------------------------------------------------------------------- strategies

# Expert ids from any Unicode scalar values, so UTF-8 ordering is exercised too.
expert_ids = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=5)


@st.composite
def draws(draw):
    n_groups = draw(st.integers(1, 4))
    ids = draw(st.lists(expert_ids, min_size=3, max_size=30, unique=True))
    pool = {e: draw(st.sets(st.integers(0, n_groups - 1), min_size=1, max_size=n_groups))
            for e in ids}
    counts = [draw(st.integers(1, 3)) for _ in range(n_groups)] + [draw(st.integers(0, 3))]
    seed = draw(st.binary(min_size=32, max_size=32))
    return seed, rerun_lists(pool, n_groups), counts


secrets = st.binary(min_size=32, max_size=32)
_ALNUM = "ABCXYZabcxyz0189"
# §1 identifiers: ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$ (short ones are enough here).
identifiers = st.builds(lambda head, tail: head + tail, st.sampled_from(_ALNUM),
                        st.text(_ALNUM + "._-", max_size=8))


@st.composite
def requests(draw):
    groups = [{"specialty": draw(identifiers), "count": draw(st.integers(1, 9)),
               "regions": sorted(draw(st.sets(identifiers, max_size=3)))}
              for _ in range(draw(st.integers(1, 3)))]
    return {"tender": draw(identifiers), "lot": draw(identifiers), "groups": groups,
            "alternates": draw(st.integers(0, 5)),
            "exclude": sorted(draw(st.sets(identifiers, max_size=4))),
            "attempt": draw(st.integers(1, 5))}


FAST = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- agreement

@FAST
@given(secrets, secrets, secrets, requests())
def test_seed_agrees(platform_secret, supervisor_secret, root, request) -> None:
    assert project.seed(platform_secret, supervisor_secret, root, request) == \
        rerun_seed(platform_secret, supervisor_secret, root, request)


@FAST
@given(draws())
def test_committee_agrees(case) -> None:
    seed, lists, counts = case
    assert project.eligible_lists_sha256(lists) == \
        hashlib.sha256(rerun_canonical(lists)).hexdigest()
    expected = rerun_draw(seed, lists, counts)
    try:
        result = project.run_draw(seed, lists, counts)
    except project.DrawShortage as error:
        # Both must fail. A shortage the project sees before drawing (a list shorter than
        # its count, or alternates short whatever is picked) is reported first, so the
        # re-run may stop at an earlier group; a shortage found during the draw (fewer
        # available than eligible) is at the same group.
        assert expected[0] == "short", (expected, error.details)
        assert expected[1] <= error.details["group"]
        if error.details["available"] < error.details["eligible"] \
                and not error.details["alternates"]:
            assert expected[1] == error.details["group"]
        return
    assert expected == (result.groups, result.alternates)


@FAST
@given(draws())
def test_fewer_alternates_agrees_with_drawing_while_candidates_remain(case) -> None:
    seed, lists, counts = case
    # Re-runner's rule: draw each alternate slot while candidates remain.
    groups_only = rerun_draw(seed, lists, counts[:-1] + [0])
    if groups_only[0] == "short":
        return
    spare = len(lists[-1]) - sum(counts[:-1])
    expected = rerun_draw(seed, lists, counts[:-1] + [min(counts[-1], spare)])
    result = project.run_draw(seed, lists, counts, allow_fewer_alternates=True)
    assert expected == (result.groups, result.alternates)
