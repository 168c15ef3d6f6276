"""The mandatory ``bid-form.json`` (投标函 summary) of PROTOCOL §3.

Canonical JSON ``{"tender", "lot", "bidder", "price", "currency", ...declared items, "pad"}``
where ``pad`` is spaces making the plaintext exactly 4096 bytes, so the sealed size says
nothing about the contents.
"""
from __future__ import annotations

import re
from typing import Any

from crypto.canonical import canonical_json, check_identifier, check_money, parse_canonical
from crypto.errors import CryptoError

BID_FORM_NAME = "bid-form.json"
BID_FORM_SIZE = 4096
REQUIRED = ("tender", "lot", "bidder", "price", "currency")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")


def _check_fields(form: Any) -> None:
    if not isinstance(form, dict):
        raise CryptoError("bad_bid_form", "the bid form is a JSON object")
    missing = [key for key in REQUIRED if key not in form]
    if missing:
        raise CryptoError("bad_bid_form", f"the bid form lacks {', '.join(missing)}")
    try:
        for field in ("tender", "lot", "bidder"):
            check_identifier(form[field], field)
        check_money(form["price"], "price")
    except CryptoError as exc:
        raise CryptoError("bad_bid_form", exc.message) from None
    if not isinstance(form["currency"], str) or not _CURRENCY_RE.fullmatch(form["currency"]):
        raise CryptoError("bad_bid_form", "currency is an ISO 4217 code such as CNY")


def pad_bid_form(form: dict) -> bytes:
    """The canonical form padded with spaces to exactly 4096 bytes.

    ``form`` has the required fields and any declared items; a ``pad`` already present
    (from a previously padded form) must be all spaces and is replaced.
    """
    if not isinstance(form, dict):
        raise CryptoError("bad_bid_form", "the bid form is a JSON object")
    form = dict(form)
    pad = form.pop("pad", "")
    if not isinstance(pad, str) or pad.strip(" "):
        raise CryptoError("bad_bid_form", "pad must be spaces only")
    _check_fields(form)
    try:
        bare = canonical_json({**form, "pad": ""})
    except CryptoError as exc:
        raise CryptoError("bad_bid_form", exc.message) from None
    # spaces encode as themselves, so the size grows one byte per pad character
    missing = BID_FORM_SIZE - len(bare)
    if missing < 0:
        raise CryptoError("bad_bid_form", f"the bid form is {len(bare)} bytes before padding; the limit is {BID_FORM_SIZE}")
    data = canonical_json({**form, "pad": " " * missing})
    assert len(data) == BID_FORM_SIZE
    return data


def parse_bid_form(data: bytes, tender: str | None = None, lot: str | None = None,
                   bidder: str | None = None) -> dict:
    """Check a decrypted bid form and return it without ``pad``.

    Raises ``bad_bid_form`` unless it is canonical, exactly 4096 bytes, padded with
    spaces and complete; ``bid_form_mismatch`` when tender, lot or bidder differ from the
    values expected (the header's).
    """
    if len(data) != BID_FORM_SIZE:
        raise CryptoError("bad_bid_form", f"the bid form is {len(data)} bytes, not {BID_FORM_SIZE}")
    try:
        form = parse_canonical(data)
    except CryptoError as exc:
        raise CryptoError("bad_bid_form", exc.message) from None
    if not isinstance(form, dict) or not isinstance(form.get("pad"), str) or form["pad"].strip(" "):
        raise CryptoError("bad_bid_form", "the bid form must be padded with spaces")
    _check_fields(form)
    for field, expected in (("tender", tender), ("lot", lot), ("bidder", bidder)):
        if expected is not None and form[field] != expected:
            raise CryptoError("bid_form_mismatch", f"the bid form's {field} is not {expected}")
    form.pop("pad")
    return form
