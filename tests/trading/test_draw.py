"""The expert draw of PROTOCOL §8: known answers, rejection sampling, removal, shortages."""
from __future__ import annotations

import hashlib
import json

import pytest

from trading.draw import (
    DrawResult, DrawShortage, InvalidDrawRequest, InvalidEligibleLists, RandomStream,
    build_eligible_lists, check_reveal, choose, commitment, draw_committee,
    eligible_lists_sha256, group_filter, make_replacement_request, make_request, run_draw,
    seed, sort_ids, validate_request,
)

TWO_64 = 1 << 64

PLATFORM_SECRET = bytes(range(32))
SUPERVISOR_SECRET = bytes(range(32, 64))
CLOSING_ROOT = bytes([0xAB]) * 32
REQUEST = {
    "tender": "T-2026-001", "lot": "1",
    "groups": [{"specialty": "A01", "count": 2, "regions": ["430400"]},
               {"specialty": "B02", "count": 1, "regions": []}],
    "alternates": 2, "exclude": ["E09"], "attempt": 1,
}
ELIGIBLE = [["E01", "E02", "E03", "E04", "E05"], ["E03", "E06", "E07"],
            ["E01", "E02", "E03", "E04", "E05", "E06", "E07"]]
# Known answers, computed once from the §8 formulas with hashlib by hand and pinned here so
# another implementation can check itself against them.
SEED_HEX = "e15ab0eb677193682f4ebc9eb4bf2fd98a9589b31da39cdd0205b232135641cc"
FIRST_VALUES = [0x6DD111232337CAD1, 0x266D825BCD9E578C, 0xDAACCAAE8359405A,
                0xB3A2F74AF039D263, 0x70191FCC98CBBACB]


class ScriptedStream:
    """A stream that returns the values it is given, to force rejections."""

    def __init__(self, values: list[int]) -> None:
        self.values = list(values)
        self.read = 0

    def next_u64(self) -> int:
        self.read += 1
        return self.values.pop(0)


def seed_of(index: int) -> bytes:
    return hashlib.sha256(b"test seed %d" % index).digest()


# --------------------------------------------------------------------------- commitments

def test_commitment_is_domain_separated_sha256() -> None:
    expected = hashlib.sha256(b"ebid/v1 draw-commit\n" + PLATFORM_SECRET).hexdigest()
    assert commitment(PLATFORM_SECRET) == expected
    assert expected == "1354ba2d3bd41f691ccd656d4860f3c6e70d0171833bda760ad0daa5eb8e1310"


def test_check_reveal_accepts_the_committed_secret() -> None:
    assert check_reveal(SUPERVISOR_SECRET, commitment(SUPERVISOR_SECRET))


@pytest.mark.parametrize("secret,commit", [
    (SUPERVISOR_SECRET, commitment(PLATFORM_SECRET)),            # another secret
    (SUPERVISOR_SECRET[:31], commitment(SUPERVISOR_SECRET)),     # truncated
    (SUPERVISOR_SECRET, commitment(SUPERVISOR_SECRET).upper()),  # not lower-case hex
    (SUPERVISOR_SECRET, commitment(SUPERVISOR_SECRET)[:-2]),     # short commitment
    (SUPERVISOR_SECRET, "zz" * 32),
    ("not bytes", commitment(SUPERVISOR_SECRET)),
])
def test_mismatched_reveal_is_refused(secret, commit) -> None:
    assert check_reveal(secret, commit) is False


def test_commitment_refuses_a_secret_that_is_not_32_bytes() -> None:
    with pytest.raises(Exception) as caught:
        commitment(b"short")
    assert caught.value.code == "invalid_draw_input"


# --------------------------------------------------------------------------- seed

def test_seed_known_answer() -> None:
    canonical = (b'{"alternates":2,"attempt":1,"exclude":["E09"],"groups":[{"count":2,'
                 b'"regions":["430400"],"specialty":"A01"},{"count":1,"regions":[],'
                 b'"specialty":"B02"}],"lot":"1","tender":"T-2026-001"}')
    by_hand = hashlib.sha256(b"ebid/v1 draw\n" + PLATFORM_SECRET + SUPERVISOR_SECRET
                             + CLOSING_ROOT + canonical).hexdigest()
    assert by_hand == SEED_HEX
    assert seed(PLATFORM_SECRET, SUPERVISOR_SECRET, CLOSING_ROOT, REQUEST).hex() == SEED_HEX


@pytest.mark.parametrize("which", ["platform", "supervisor", "root", "request"])
def test_any_changed_input_changes_the_seed_and_the_committee(which: str) -> None:
    pool = [f"X{i:03d}" for i in range(60)]
    eligible = [pool, pool]
    base = run_draw(seed(PLATFORM_SECRET, SUPERVISOR_SECRET, CLOSING_ROOT, REQUEST),
                    eligible, [7, 0])
    args = [PLATFORM_SECRET, SUPERVISOR_SECRET, CLOSING_ROOT, dict(REQUEST)]
    flip = {"platform": 0, "supervisor": 1, "root": 2}
    if which == "request":
        args[3]["attempt"] = 2
    else:
        changed = bytearray(args[flip[which]])
        changed[0] ^= 1
        args[flip[which]] = bytes(changed)
    other = run_draw(seed(*args), eligible, [7, 0])
    # 7 ordered picks of 60: the chance of equality by luck is below 1e-12.
    assert other.groups != base.groups


def test_seed_refuses_wrong_sizes_and_invalid_requests() -> None:
    with pytest.raises(Exception):
        seed(PLATFORM_SECRET[:16], SUPERVISOR_SECRET, CLOSING_ROOT, REQUEST)
    with pytest.raises(Exception):
        seed(PLATFORM_SECRET, SUPERVISOR_SECRET, CLOSING_ROOT[:31], REQUEST)
    with pytest.raises(InvalidDrawRequest):
        seed(PLATFORM_SECRET, SUPERVISOR_SECRET, CLOSING_ROOT, {**REQUEST, "attempt": 0})


# --------------------------------------------------------------------------- stream

def test_stream_reads_blocks_eight_bytes_at_a_time() -> None:
    stream = RandomStream(bytes.fromhex(SEED_HEX))
    values = [stream.next_u64() for _ in range(5)]
    assert values == FIRST_VALUES
    # The fifth value is the first of block 1: the counter is a big-endian uint64.
    block1 = hashlib.sha256(bytes.fromhex(SEED_HEX) + b"\x00" * 7 + b"\x01").digest()
    assert values[4] == int.from_bytes(block1[:8], "big")
    assert stream.values_read == 5


# --------------------------------------------------------------------------- choice

def test_choose_m_three_rejects_only_the_top_value() -> None:
    # 2^64 mod 3 == 1, so limit = 2^64 - 1 and only 2^64 - 1 itself is rejected.
    assert TWO_64 % 3 == 1
    stream = ScriptedStream([TWO_64 - 1, TWO_64 - 2])
    assert choose(stream, 3) == (TWO_64 - 2) % 3
    assert stream.read == 2


def test_choose_m_six_boundary() -> None:
    limit = TWO_64 - (TWO_64 % 6)
    assert limit == TWO_64 - 4
    # At the limit: rejected; the next value just below it is accepted.
    stream = ScriptedStream([limit, limit + 3, limit - 1])
    assert choose(stream, 6) == (limit - 1) % 6 == 5
    assert stream.read == 3


def test_choose_power_of_two_rejects_nothing() -> None:
    stream = ScriptedStream([TWO_64 - 1])
    assert choose(stream, 4) == 3
    assert stream.read == 1


def test_choose_among_one_still_consumes_a_value() -> None:
    stream = ScriptedStream([123, 456])
    assert choose(stream, 1) == 0
    assert stream.read == 1


@pytest.mark.parametrize("m", [0, -1, True])
def test_choose_refuses_empty_choices(m) -> None:
    with pytest.raises(ValueError):
        choose(ScriptedStream([1]), m)


# --------------------------------------------------------------------------- run_draw

def test_known_answer_committee_computed_by_hand() -> None:
    v = FIRST_VALUES
    # None of these values is anywhere near a rejection limit.
    assert all(value < TWO_64 - 16 for value in v)
    group_a = ["E01", "E02", "E03", "E04", "E05"]
    first = group_a.pop(v[0] % 5)
    second = group_a.pop(v[1] % 4)
    group_b = [e for e in ["E03", "E06", "E07"] if e not in {first, second}]
    third = group_b.pop(v[2] % len(group_b))
    spare = [e for e in ELIGIBLE[2] if e not in {first, second, third}]
    alt1 = spare.pop(v[3] % len(spare))
    alt2 = spare.pop(v[4] % len(spare))

    result = run_draw(bytes.fromhex(SEED_HEX), ELIGIBLE, [2, 1, 2])
    assert result == DrawResult(groups=[[first, second], [third]], alternates=[alt1, alt2])
    # Pinned, so a change to the algorithm cannot pass unnoticed.
    assert result.to_json() == {"groups": [["E02", "E01"], ["E03"]],
                                "alternates": ["E07", "E04"]}
    assert result.members == ["E02", "E01", "E03"]


def test_draw_committee_takes_counts_from_the_request() -> None:
    s = seed(PLATFORM_SECRET, SUPERVISOR_SECRET, CLOSING_ROOT, REQUEST)
    assert draw_committee(s, REQUEST, ELIGIBLE) == run_draw(s, ELIGIBLE, [2, 1, 2])


def test_draw_committee_refuses_lists_that_contain_an_excluded_expert() -> None:
    eligible = [["E01", "E09"], ["E03"], ["E01", "E03", "E09"]]
    with pytest.raises(InvalidEligibleLists) as caught:
        draw_committee(bytes(32), REQUEST, eligible)
    assert caught.value.details["reason"] == "excluded_listed"


def test_determinism_same_inputs_same_committee() -> None:
    s = seed(PLATFORM_SECRET, SUPERVISOR_SECRET, CLOSING_ROOT, REQUEST)
    assert run_draw(s, ELIGIBLE, [2, 1, 2]) == run_draw(bytes(s), ELIGIBLE, [2, 1, 2])


def test_picked_expert_is_removed_from_every_group() -> None:
    eligible = [["a", "b"], ["a", "b", "c", "d"], ["a", "b", "c", "d"]]
    seen = set()
    for index in range(50):
        result = run_draw(seed_of(index), eligible, [2, 1, 1])
        assert sorted(result.groups[0]) == ["a", "b"]
        # a and b are gone from group 1 and from the alternates.
        assert sorted(result.groups[1] + result.alternates) == ["c", "d"]
        seen.add(result.groups[1][0])
    assert seen == {"c", "d"}


def test_no_expert_is_seated_twice() -> None:
    pool = [f"P{i:02d}" for i in range(12)]
    eligible = [pool[:8], pool[4:], pool]
    for index in range(30):
        result = run_draw(seed_of(index), eligible, [3, 3, 4])
        everyone = result.members + result.alternates
        assert len(everyone) == len(set(everyone)) == 10
        assert set(result.groups[0]) <= set(pool[:8])
        assert set(result.groups[1]) <= set(pool[4:])


def test_alternates_come_from_every_group_and_exclude_members() -> None:
    eligible = [["a", "b"], ["x", "y"], ["a", "b", "x", "y"]]
    seen: set[str] = set()
    for index in range(40):
        result = run_draw(seed_of(index), eligible, [1, 1, 2])
        assert not set(result.alternates) & set(result.members)
        seen.update(result.alternates)
    assert seen == {"a", "b", "x", "y"}


def test_shortage_names_the_group_before_drawing() -> None:
    with pytest.raises(DrawShortage) as caught:
        run_draw(bytes(32), [["a", "b", "c"], ["d", "e"], ["a", "b", "c", "d", "e"]],
                 [1, 3, 0], specialties=["A01", "B02"])
    error = caught.value
    assert error.code == "not_enough_experts"
    assert error.details == {"group": 1, "specialty": "B02", "alternates": False,
                             "needed": 3, "available": 2, "eligible": 2}


def test_shortage_after_earlier_groups_took_the_shared_expert() -> None:
    # Group 0 takes a or b; when it takes a, group 1 (only a) is empty at its turn.
    eligible = [["a", "b"], ["a"], ["a", "b"]]
    outcomes = set()
    for index in range(40):
        try:
            result = run_draw(seed_of(index), eligible, [1, 1, 0])
            assert result.groups == [["b"], ["a"]]
            outcomes.add("ok")
        except DrawShortage as error:
            assert error.details["group"] == 1
            assert error.details["available"] == 0
            assert error.details["eligible"] == 1
            outcomes.add("short")
    assert outcomes == {"ok", "short"}


def test_alternates_shortage_raises_by_default() -> None:
    eligible = [["a", "b", "c"], ["a", "b", "c"]]
    with pytest.raises(DrawShortage) as caught:
        run_draw(bytes(32), eligible, [2, 2])
    assert caught.value.details == {"group": 1, "specialty": None, "alternates": True,
                                    "needed": 2, "available": 1, "eligible": 3}


def test_alternates_may_be_fewer_when_allowed() -> None:
    eligible = [["a", "b", "c"], ["a", "b", "c"]]
    strict_equivalent = run_draw(bytes(32), eligible, [2, 1])
    result = run_draw(bytes(32), eligible, [2, 5], allow_fewer_alternates=True)
    # Same stream, same picks: the fewer-alternates rule only stops earlier.
    assert result == strict_equivalent
    assert len(result.alternates) == 1


def test_zero_alternates_draws_none() -> None:
    result = run_draw(bytes(32), [["a", "b"], ["a", "b"]], [1, 0])
    assert result.alternates == []


@pytest.mark.parametrize("eligible,counts,reason", [
    ([["b", "a"], ["a", "b"]], [1, 0], "order"),
    ([["a", "a"], ["a"]], [1, 0], "order"),
    ([["a", "b"], ["a"]], [1, 0], "alternates_union"),
    ([["a", "b"], ["a", "b", "c"]], [1, 0], "alternates_union"),
    ([["a", "b"]], [1], "shape"),
    ([["a", "b"], ["a", "b"]], [1], "counts"),
    ([["a", "b"], ["a", "b"]], [0, 0], "counts"),
    ([["", "b"], ["", "b"]], [1, 0], "id"),
])
def test_bad_eligible_lists_are_refused(eligible, counts, reason) -> None:
    with pytest.raises(InvalidEligibleLists) as caught:
        run_draw(bytes(32), eligible, counts)
    assert caught.value.details["reason"] == reason


# --------------------------------------------------------------------------- lists

def test_sort_ids_uses_utf8_byte_order() -> None:
    # UTF-8 byte order is code-point order; UTF-16 order would put U+10000 first.
    assert sort_ids(["b", "a", "é", "Z", "_", "-"]) == ["-", "Z", "_", "a", "b", "é"]
    assert sort_ids(["\U00010000", "\uff61"]) == ["\uff61", "\U00010000"]


def test_eligible_lists_sha256_hashes_the_canonical_json() -> None:
    text = '[["E01","E02","E03","E04","E05"],["E03","E06","E07"],' \
           '["E01","E02","E03","E04","E05","E06","E07"]]'
    assert eligible_lists_sha256(ELIGIBLE) == hashlib.sha256(text.encode()).hexdigest()
    assert eligible_lists_sha256(ELIGIBLE) == \
        "ee94f00942861464c02e17c46175d02bac8be2fd624c306dff5afc31123b77b8"
    assert eligible_lists_sha256([["é"], ["é"]]) == \
        hashlib.sha256('[["é"],["é"]]'.encode()).hexdigest()


def test_build_eligible_lists_filters_excludes_and_unions() -> None:
    request = make_request("T1", "L1", [
        {"specialty": "A01", "count": 1, "regions": ["R1"]},
        {"specialty": "B02", "count": 1, "regions": []},
    ], alternates=1, exclude=["e3"])
    experts = [
        {"id": "e5", "specialties": {"A01"}, "region": "R1"},
        {"id": "e1", "specialties": {"A01", "B02"}, "region": "R1"},
        {"id": "e2", "specialties": {"A01"}, "region": "R2"},   # wrong region for A01
        {"id": "e3", "specialties": {"A01"}, "region": "R1"},   # excluded
        {"id": "e4", "specialties": {"B02"}, "region": None},
        {"id": "e6", "specialties": {"C03"}, "region": "R1"},   # no group
    ]
    lists = build_eligible_lists(
        request, experts, lambda e, g: group_filter(e["specialties"], e["region"], g))
    assert lists == [["e1", "e5"], ["e1", "e4"], ["e1", "e4", "e5"]]


def test_build_eligible_lists_refuses_a_duplicate_expert() -> None:
    request = make_request("T1", "L1", [{"specialty": "A01", "count": 1}])
    with pytest.raises(InvalidEligibleLists):
        build_eligible_lists(request, [{"id": "a"}, {"id": "a"}], lambda e, g: True)


# --------------------------------------------------------------------------- request

def test_valid_request_passes() -> None:
    validate_request(REQUEST)
    assert json.loads(json.dumps(REQUEST)) == REQUEST


@pytest.mark.parametrize("change,field", [
    ({"extra": 1}, "request"),
    ({"tender": "bad id"}, "tender"),
    ({"lot": ""}, "lot"),
    ({"groups": []}, "groups"),
    ({"groups": [{"specialty": "A01", "count": 0, "regions": []}]}, "groups[0].count"),
    ({"groups": [{"specialty": "A01", "count": True, "regions": []}]}, "groups[0].count"),
    ({"groups": [{"specialty": "A01", "count": 1}]}, "groups[0]"),
    ({"groups": [{"specialty": "A01", "count": 1, "regions": ["b", "a"]}]},
     "groups[0].regions"),
    ({"alternates": -1}, "alternates"),
    ({"alternates": 1.0}, "alternates"),
    ({"exclude": ["E2", "E1"]}, "exclude"),
    ({"exclude": ["E1", "E1"]}, "exclude"),
    ({"attempt": 0}, "attempt"),
])
def test_invalid_requests_are_refused(change, field) -> None:
    with pytest.raises(InvalidDrawRequest) as caught:
        validate_request({**REQUEST, **change})
    assert caught.value.code == "invalid_draw_request"
    assert caught.value.details["field"] == field


def test_missing_key_is_refused() -> None:
    request = dict(REQUEST)
    del request["attempt"]
    with pytest.raises(InvalidDrawRequest):
        validate_request(request)


def test_make_request_sorts_and_deduplicates() -> None:
    request = make_request("T1", "L1", [{"specialty": "A01", "count": 2,
                                         "regions": ["R2", "R1", "R2"]}],
                           exclude=["e2", "e1", "e2"])
    assert request["groups"][0]["regions"] == ["R1", "R2"]
    assert request["exclude"] == ["e1", "e2"]


def test_replacement_request_excludes_seated_and_replaced() -> None:
    replacement = make_replacement_request(
        REQUEST, seated=["E02", "E01"], replaced=["E03"],
        groups=[{"specialty": "B02", "count": 1, "regions": []}])
    assert replacement["attempt"] == 2
    assert replacement["exclude"] == ["E01", "E02", "E03", "E09"]
    assert replacement["groups"] == [{"specialty": "B02", "count": 1, "regions": []}]
    assert replacement["alternates"] == 0
