"""The expert draw (专家抽取), exactly as PROTOCOL §8 writes it, so anyone can re-run it.

A committee must come from a draw that no single party can steer and that a supervisor or
a losing bidder can re-run from published data to get the same names. Everything here is
pure: bytes and lists in, names out; no clock, no database.

The pieces, in the order a draw uses them:

1. :func:`commitment` / :func:`check_reveal`: the platform and the supervising body each
   commit to a fresh 32-byte secret before the draw and reveal it at the draw.
2. :func:`validate_request` / :func:`make_request`: the logged request
   ``{"tender", "lot", "groups", "alternates", "exclude", "attempt"}``.
3. :func:`seed`: ``SHA-256("ebid/v1 draw\\n" || platform_secret || supervisor_secret ||
   closing_root || canonical_json(request))``.
4. :func:`build_eligible_lists` / :func:`eligible_lists_sha256`: one sorted list of expert
   ids per group, then the alternates' candidates (every expert eligible for any group).
5. :class:`RandomStream` / :func:`choose` / :func:`run_draw`: slot by slot, group by group.

Decisions this module makes where §8 is silent (each is also in the function's docstring):

- **Alternates that run short.** By default a draw whose alternates cannot all be filled
  raises :class:`DrawShortage` like any group. With ``allow_fewer_alternates=True`` the
  alternates are drawn slot by slot until their candidates run out, so fewer come back.
  Either way a successful result is reproduced by a re-runner that simply draws each slot
  while candidates remain: both rules consume the stream identically up to that point.
- **When a group is short** is decided at the start of its turn: the number of its eligible
  experts not picked by earlier groups. Within a group every pick removes exactly one of
  its own candidates, so this is the same as failing at the first empty slot. Shortages
  certain whatever the stream says are reported first, before it is touched: a group list
  shorter than its count, then alternates short although every group could be filled
  (``len(candidates) - sum(group counts) < alternates``). So the error names the first
  group a re-runner would find short, or a later one that is short in any case.
- **A choice among one candidate** still consumes one stream value (§8: "take the next
  value v"), so a re-runner must not skip it.
- **Request strictness.** ``regions`` and ``exclude`` must be sorted (UTF-8 byte order) and
  free of duplicates, so that one logical request has exactly one byte encoding and hence
  one seed. An empty ``regions`` list means "any region".
"""
from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from core.errors import AppError
from crypto.canonical import canonical_json

__all__ = [
    "COMMIT_DOMAIN", "SEED_DOMAIN", "SECRET_SIZE", "ROOT_SIZE",
    "DrawError", "InvalidDrawRequest", "InvalidEligibleLists", "DrawShortage",
    "DrawResult", "RandomStream", "U64Source",
    "commitment", "check_reveal", "validate_request", "make_request",
    "make_replacement_request", "seed", "choose", "sort_ids", "eligible_lists_sha256",
    "validate_eligible_lists", "build_eligible_lists", "group_filter", "run_draw",
    "draw_committee",
]

COMMIT_DOMAIN = b"ebid/v1 draw-commit\n"
SEED_DOMAIN = b"ebid/v1 draw\n"
#: §8: "each commit to a fresh 32-byte secret".
SECRET_SIZE = 32
#: The closing checkpoint's root is a SHA-256 Merkle root (§6, §7).
ROOT_SIZE = 32

_TWO_64 = 1 << 64
_MAX_JSON_INT = (1 << 53) - 1  # PROTOCOL §1: integers 0 … 2^53−1
# PROTOCOL §1 identifiers; expert ids, specialty and region codes use the same shape so
# that they are safe in logs, URLs and file names.
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_REQUEST_KEYS = frozenset({"tender", "lot", "groups", "alternates", "exclude", "attempt"})
_GROUP_KEYS = frozenset({"specialty", "count", "regions"})


# --------------------------------------------------------------------------- errors

class DrawError(AppError):
    """A draw could not be made or checked. ``code`` is stable."""

    status, code, message_zh, message_en = 422, "draw_error", "专家抽取失败", "Expert draw failed"


class InvalidDrawRequest(DrawError):
    """The request is not exactly the §8 shape."""

    code, message_zh, message_en = "invalid_draw_request", "抽取申请格式错误", "Invalid draw request"


class InvalidEligibleLists(DrawError):
    """Eligible lists are unsorted, duplicated, or do not fit the counts."""

    code, message_zh, message_en = (
        "invalid_eligible_lists", "可抽取专家名单无效", "Invalid eligible lists")


class DrawShortage(DrawError):
    """A group (or the alternates) cannot be filled.

    ``details``: ``group`` (0-based index; ``len(groups)`` for the alternates),
    ``specialty`` (None for the alternates), ``alternates`` (bool), ``needed``,
    ``available`` (eligible and not yet picked at the group's turn) and ``eligible``
    (the group's whole list, before earlier groups picked from it).
    """

    status, code, message_zh, message_en = (
        409, "not_enough_experts", "符合条件的专家不足", "Not enough eligible experts")


def _bad_request(field: str, reason: str) -> InvalidDrawRequest:
    return InvalidDrawRequest(f"Invalid draw request: {field}: {reason}", field=field,
                              reason=reason)


# --------------------------------------------------------------------------- commitments

def commitment(secret: bytes) -> str:
    """Return the hex commitment ``SHA-256("ebid/v1 draw-commit\\n" || secret)``.

    The secret must be exactly 32 bytes (§8), so a short or guessable one is refused here
    rather than discovered by an auditor.
    """
    _check_bytes("secret", secret, SECRET_SIZE)
    return hashlib.sha256(COMMIT_DOMAIN + bytes(secret)).hexdigest()


def check_reveal(secret: bytes, commitment_hex: str) -> bool:
    """True when ``secret`` opens ``commitment_hex``; compared in constant time.

    A malformed secret or commitment is simply a mismatch (False): a reveal that does not
    match voids the draw (§8), whatever the reason it does not match.
    """
    if not isinstance(secret, (bytes, bytearray)) or len(secret) != SECRET_SIZE:
        return False
    if not isinstance(commitment_hex, str) or not _HEX64.fullmatch(commitment_hex):
        return False
    expected = hashlib.sha256(COMMIT_DOMAIN + bytes(secret)).digest()
    return hmac.compare_digest(expected, bytes.fromhex(commitment_hex))


def _check_bytes(name: str, value: object, size: int) -> None:
    if not isinstance(value, (bytes, bytearray)):
        raise DrawError(f"{name} must be bytes", code="invalid_draw_input", field=name)
    if len(value) != size:
        raise DrawError(f"{name} must be {size} bytes", code="invalid_draw_input",
                        field=name, size=len(value))


# --------------------------------------------------------------------------- the request

def _utf8_key(value: str) -> bytes:
    return value.encode("utf-8")


def sort_ids(ids: Iterable[str]) -> list[str]:
    """Sort expert ids ascending by the bytes of their UTF-8 encoding (§8).

    For well-formed strings this equals code-point order, but encoding makes the contract
    explicit and refuses lone surrogates, which canonical JSON cannot carry anyway.
    """
    return sorted(ids, key=_utf8_key)


def _is_json_int(value: object) -> bool:
    # bool is a subclass of int; True must not pass for a count.
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_JSON_INT


def _check_identifier(field: str, value: object) -> None:
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise _bad_request(field, "must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _check_sorted_unique_ids(field: str, values: object) -> None:
    if not isinstance(values, list):
        raise _bad_request(field, "must be a list")
    for i, value in enumerate(values):
        _check_identifier(f"{field}[{i}]", value)
    keys = [_utf8_key(v) for v in values]
    if any(a >= b for a, b in zip(keys, keys[1:])):
        raise _bad_request(field, "must be sorted ascending without duplicates")


def validate_request(request: Mapping[str, Any]) -> None:
    """Check that ``request`` is exactly the §8 request; raise :class:`InvalidDrawRequest`.

    Shape: ``{"tender": id, "lot": id, "groups": [{"specialty": code, "count": n >= 1,
    "regions": [codes]}, ...] (at least one), "alternates": n >= 0, "exclude": [expert
    ids], "attempt": n >= 1}`` and nothing else. ``regions`` and ``exclude`` are sorted
    by UTF-8 bytes and duplicate-free (one request, one encoding, one seed); an empty
    ``regions`` means any region. ``details`` name the offending ``field`` and ``reason``.
    """
    if not isinstance(request, Mapping):
        raise _bad_request("request", "must be an object")
    keys = set(request)
    if keys != _REQUEST_KEYS:
        missing = sorted(_REQUEST_KEYS - keys)
        extra = sorted(str(k) for k in keys - _REQUEST_KEYS)
        raise _bad_request("request", f"keys must be exactly {sorted(_REQUEST_KEYS)}; "
                                      f"missing {missing}, unexpected {extra}")
    _check_identifier("tender", request["tender"])
    _check_identifier("lot", request["lot"])
    groups = request["groups"]
    if not isinstance(groups, list) or not groups:
        raise _bad_request("groups", "must be a non-empty list")
    for i, group in enumerate(groups):
        field = f"groups[{i}]"
        if not isinstance(group, Mapping) or set(group) != _GROUP_KEYS:
            raise _bad_request(field, f"must be an object with exactly {sorted(_GROUP_KEYS)}")
        _check_identifier(f"{field}.specialty", group["specialty"])
        if not _is_json_int(group["count"]) or group["count"] < 1:
            raise _bad_request(f"{field}.count", "must be an integer >= 1")
        _check_sorted_unique_ids(f"{field}.regions", group["regions"])
    if not _is_json_int(request["alternates"]):
        raise _bad_request("alternates", "must be an integer >= 0")
    _check_sorted_unique_ids("exclude", request["exclude"])
    if not _is_json_int(request["attempt"]) or request["attempt"] < 1:
        raise _bad_request("attempt", "must be an integer >= 1")


def make_request(tender: str, lot: str, groups: Iterable[Mapping[str, Any]], *,
                 alternates: int = 0, exclude: Iterable[str] = (),
                 attempt: int = 1) -> dict[str, Any]:
    """Build a valid request, sorting and de-duplicating ``regions`` and ``exclude``."""
    request = {
        "tender": tender,
        "lot": lot,
        "groups": [
            {"specialty": g["specialty"], "count": g["count"],
             "regions": sort_ids(set(g.get("regions", ())))}
            for g in groups
        ],
        "alternates": alternates,
        "exclude": sort_ids(set(exclude)),
        "attempt": attempt,
    }
    validate_request(request)
    return request


def make_replacement_request(previous: Mapping[str, Any], *, seated: Iterable[str],
                             replaced: Iterable[str], groups: Iterable[Mapping[str, Any]],
                             alternates: int = 0) -> dict[str, Any]:
    """The request for a replacement draw (§8 Replacement; RULES D5).

    ``attempt`` + 1; ``exclude`` = the previous exclusions plus the seated members and the
    replaced experts (keeping earlier exclusions, so an expert replaced in attempt 2 cannot
    come back in attempt 3); ``groups`` for the missing seats only.
    """
    validate_request(previous)
    return make_request(
        previous["tender"], previous["lot"], groups, alternates=alternates,
        exclude=set(previous["exclude"]) | set(seated) | set(replaced),
        attempt=previous["attempt"] + 1,
    )


# --------------------------------------------------------------------------- the seed

def seed(platform_secret: bytes, supervisor_secret: bytes, closing_root: bytes,
         request: Mapping[str, Any]) -> bytes:
    """Return the 32-byte draw seed of §8.

    ``SHA-256("ebid/v1 draw\\n" || platform_secret || supervisor_secret || closing_root ||
    canonical_json(request))``. Secrets and root are 32 bytes each; the request is
    validated first, so a malformed one never yields a seed.
    """
    _check_bytes("platform_secret", platform_secret, SECRET_SIZE)
    _check_bytes("supervisor_secret", supervisor_secret, SECRET_SIZE)
    _check_bytes("closing_root", closing_root, ROOT_SIZE)
    validate_request(request)
    return hashlib.sha256(SEED_DOMAIN + bytes(platform_secret) + bytes(supervisor_secret)
                          + bytes(closing_root) + canonical_json(request)).digest()


# --------------------------------------------------------------------------- randomness

class U64Source(Protocol):
    """Anything that yields unsigned 64-bit values; tests substitute a scripted one."""

    def next_u64(self) -> int:  # pragma: no cover - protocol
        """Return the next value, 0 <= v < 2^64."""


class RandomStream:
    """§8 stream: ``block(c) = SHA-256(seed || uint64_be(c))``, read as uint64_be values."""

    def __init__(self, seed_bytes: bytes) -> None:
        if not isinstance(seed_bytes, (bytes, bytearray)):
            raise TypeError("seed must be bytes")
        self._seed = bytes(seed_bytes)
        self._counter = 0
        self._buffer = b""
        self._offset = 0
        #: How many values have been read; published with the result it helps a re-runner
        #: find where two implementations diverge.
        self.values_read = 0

    def next_u64(self) -> int:
        """Return the next 8 bytes of the stream as a big-endian unsigned integer."""
        if self._offset == len(self._buffer):
            if self._counter >= _TWO_64:  # 2^70 bytes: unreachable, but never wrap silently
                raise OverflowError("random stream exhausted")
            self._buffer = hashlib.sha256(
                self._seed + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
            self._offset = 0
        value = int.from_bytes(self._buffer[self._offset:self._offset + 8], "big")
        self._offset += 8
        self.values_read += 1
        return value


def choose(stream: U64Source, m: int) -> int:
    """Pick an index in ``range(m)`` without modulo bias (§8 Choice).

    With ``limit = 2^64 − (2^64 mod m)`` values ``v >= limit`` are rejected and the next
    value taken, so every index is equally likely; the pick is ``v mod m``. Even ``m == 1``
    consumes one value.
    """
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ValueError("m must be a positive integer")
    limit = _TWO_64 - (_TWO_64 % m)
    while True:
        value = stream.next_u64()
        if value < limit:
            return value % m


# --------------------------------------------------------------------------- eligible lists

def eligible_lists_sha256(lists: Sequence[Sequence[str]]) -> str:
    """Hex SHA-256 of ``canonical_json([[group 1 ids], ..., [alternates' candidates]])``."""
    return hashlib.sha256(canonical_json([list(ids) for ids in lists])).hexdigest()


def validate_eligible_lists(eligible: Sequence[Sequence[str]]) -> None:
    """Check the §8 shape of eligible lists; raise :class:`InvalidEligibleLists`.

    At least one group list plus the alternates' list; each list strictly ascending by
    UTF-8 bytes (so sorted and duplicate-free) of non-empty strings; the last list is
    exactly the union of the group lists. A list that breaks this would give a re-runner
    a different committee, so it is refused rather than repaired.
    """
    if not isinstance(eligible, Sequence) or isinstance(eligible, (str, bytes)) \
            or len(eligible) < 2:
        raise InvalidEligibleLists("Need one list per group and the alternates' list",
                                   reason="shape")
    for index, ids in enumerate(eligible):
        if not isinstance(ids, Sequence) or isinstance(ids, (str, bytes)):
            raise InvalidEligibleLists("Each eligible list must be a list", list=index,
                                       reason="shape")
        if not all(isinstance(i, str) and i for i in ids):
            raise InvalidEligibleLists("Expert ids must be non-empty strings", list=index,
                                       reason="id")
        keys = [_utf8_key(i) for i in ids]
        if any(a >= b for a, b in zip(keys, keys[1:])):
            raise InvalidEligibleLists("Eligible list not sorted or has duplicates",
                                       list=index, reason="order")
    union = sort_ids({i for ids in eligible[:-1] for i in ids})
    if list(eligible[-1]) != union:
        raise InvalidEligibleLists(
            "The alternates' candidates must be every expert eligible for any group",
            list=len(eligible) - 1, reason="alternates_union")


E = TypeVar("E")


def _default_id(expert: Any) -> str:
    return expert["id"] if isinstance(expert, Mapping) else expert.id


def group_filter(specialties: Iterable[str], region: str | None,
                 group: Mapping[str, Any]) -> bool:
    """True when an expert with these specialties and region fits ``group``'s filters.

    An empty ``regions`` list admits every region (including an unknown one).
    """
    if group["specialty"] not in set(specialties):
        return False
    regions = group["regions"]
    return not regions or region in regions


def build_eligible_lists(request: Mapping[str, Any], experts: Iterable[E],
                         is_eligible: Callable[[E, Mapping[str, Any]], bool], *,
                         id_of: Callable[[E], str] = _default_id) -> list[list[str]]:
    """Build the §8 eligible lists for ``request``.

    ``is_eligible(expert, group)`` applies the group's filters and every recusal and
    qualification rule (see :func:`group_filter` and ``trading.recusal``); experts in the
    request's ``exclude`` are left out here, whatever the predicate says. Returns one
    sorted list per group, then the alternates' candidates: every expert eligible for any
    group. ``id_of`` reads an expert's id (default ``expert["id"]`` or ``expert.id``).
    """
    validate_request(request)
    excluded = set(request["exclude"])
    groups = request["groups"]
    per_group: list[list[str]] = [[] for _ in groups]
    seen: set[str] = set()
    for expert in experts:
        expert_id = id_of(expert)
        if expert_id in seen:
            raise InvalidEligibleLists("Expert listed twice in the pool", expert=expert_id,
                                       reason="duplicate_expert")
        seen.add(expert_id)
        if expert_id in excluded:
            continue
        for index, group in enumerate(groups):
            if is_eligible(expert, group):
                per_group[index].append(expert_id)
    lists = [sort_ids(ids) for ids in per_group]
    lists.append(sort_ids({i for ids in lists for i in ids}))
    return lists


# --------------------------------------------------------------------------- the draw

@dataclass(frozen=True)
class DrawResult:
    """The committee: picks per group in slot order, then the alternates in call order."""

    groups: list[list[str]]
    alternates: list[str]

    @property
    def members(self) -> list[str]:
        """Every seated member, group by group, in slot order."""
        return [expert for group in self.groups for expert in group]

    def to_json(self) -> dict[str, Any]:
        """The published form: ``{"groups": [[ids], ...], "alternates": [ids]}``."""
        return {"groups": [list(g) for g in self.groups], "alternates": list(self.alternates)}


def run_draw(seed_bytes: bytes, eligible: Sequence[Sequence[str]], counts: Sequence[int], *,
             specialties: Sequence[str] | None = None,
             allow_fewer_alternates: bool = False) -> DrawResult:
    """Draw the committee from ``seed_bytes`` (§8 Random stream and Choice).

    ``eligible``: one sorted list per group, then the alternates' candidates (see
    :func:`validate_eligible_lists`). ``counts``: seats per group, then the number of
    alternates. Groups are drawn in order, slot by slot; each slot picks, with
    :func:`choose`, from the group's eligible experts not yet picked, in sorted order,
    and a picked expert is removed from every group (the alternates included).

    Raises :class:`DrawShortage` (``not_enough_experts``) naming the group, its
    ``specialty`` (from ``specialties``, if given), ``needed`` and ``available``. Lists that
    are too short on their own are reported before any drawing; a group emptied by earlier
    groups' picks is reported at its turn. Alternates that run short raise too, unless
    ``allow_fewer_alternates``: then as many as remain are drawn, slot by slot.
    """
    validate_eligible_lists(eligible)
    if len(counts) != len(eligible):
        raise InvalidEligibleLists("Need one count per eligible list", reason="counts",
                                   lists=len(eligible), counts=len(counts))
    for index, count in enumerate(counts):
        group_count_ok = _is_json_int(count) and (count >= 1 or index == len(counts) - 1)
        if not group_count_ok:
            raise InvalidEligibleLists("Counts are integers, >= 1 for groups", reason="counts",
                                       list=index)
    if specialties is not None and len(specialties) != len(eligible) - 1:
        raise InvalidEligibleLists("Need one specialty per group", reason="specialties")

    last = len(eligible) - 1

    def shortage(index: int, available: int) -> DrawShortage:
        is_alternates = index == last
        specialty = None if is_alternates or specialties is None else specialties[index]
        what = "the alternates" if is_alternates else f"group {index} ({specialty})"
        error = DrawShortage(
            f"Not enough eligible experts for {what}: {counts[index]} needed, "
            f"{available} available", group=index, specialty=specialty,
            alternates=is_alternates, needed=counts[index], available=available,
            eligible=len(eligible[index]))
        error.details["specialty"] = specialty  # AppError drops None; keep the key stable
        return error

    # Shortages visible without any randomness come first, so their report never depends
    # on the secrets.
    for index in range(last):
        if len(eligible[index]) < counts[index]:
            raise shortage(index, len(eligible[index]))
    # Once every group is filled, exactly len(union) - sum(group counts) candidates are
    # left for the alternates, whatever was picked. A negative figure means some group
    # must run short, and the draw below names it.
    spare = len(eligible[last]) - sum(counts[:last])
    if not allow_fewer_alternates and 0 <= spare < counts[last]:
        raise shortage(last, spare)

    stream = RandomStream(seed_bytes)
    picked: set[str] = set()
    drawn: list[list[str]] = []
    for index, candidates_all in enumerate(eligible):
        remaining = [e for e in candidates_all if e not in picked]  # keeps sorted order
        needed = counts[index]
        if len(remaining) < needed:
            if index == last and allow_fewer_alternates:
                needed = len(remaining)
            else:
                raise shortage(index, len(remaining))
        picks: list[str] = []
        for _ in range(needed):
            expert = remaining.pop(choose(stream, len(remaining)))
            picks.append(expert)
            picked.add(expert)
        drawn.append(picks)
    return DrawResult(groups=drawn[:last], alternates=drawn[last])


def draw_committee(seed_bytes: bytes, request: Mapping[str, Any],
                   eligible: Sequence[Sequence[str]], *,
                   allow_fewer_alternates: bool = False) -> DrawResult:
    """:func:`run_draw` with counts and specialties taken from ``request``.

    Also checks that no excluded expert appears in the eligible lists, since the request
    and the lists are published side by side and must agree.
    """
    validate_request(request)
    groups = request["groups"]
    if len(eligible) != len(groups) + 1:
        raise InvalidEligibleLists("Need one list per group and the alternates' list",
                                   reason="shape", lists=len(eligible), groups=len(groups))
    excluded = set(request["exclude"])
    leaked = sort_ids({e for ids in eligible for e in ids if e in excluded})
    if leaked:
        raise InvalidEligibleLists("Excluded experts appear in the eligible lists",
                                   reason="excluded_listed", experts=leaked)
    counts = [g["count"] for g in groups] + [request["alternates"]]
    return run_draw(seed_bytes, eligible, counts,
                    specialties=[g["specialty"] for g in groups],
                    allow_fewer_alternates=allow_fewer_alternates)
