"""The padded bid-form.json of PROTOCOL §3."""
from __future__ import annotations

import pytest

from crypto.bidform import BID_FORM_SIZE, pad_bid_form, parse_bid_form
from crypto.canonical import canonical_json, parse_canonical
from crypto.errors import CryptoError

FORM = {"tender": "T-1", "lot": "L1", "bidder": "B1", "price": "1234567.80", "currency": "CNY",
        "duration_days": 180, "items": [{"name": "钢材", "qty": 3}]}


def test_padding_makes_exactly_4096_canonical_bytes():
    data = pad_bid_form(FORM)
    assert len(data) == BID_FORM_SIZE == 4096
    parsed = parse_canonical(data)
    assert set(parsed["pad"]) == {" "} and {k: v for k, v in parsed.items() if k != "pad"} == FORM
    assert parse_bid_form(data, tender="T-1", lot="L1", bidder="B1") == FORM
    assert pad_bid_form(parsed) == data          # re-padding a padded form is stable
    assert len(pad_bid_form({k: FORM[k] for k in ("tender", "lot", "bidder", "price", "currency")})) == 4096


@pytest.mark.parametrize("change", [
    lambda f: {k: v for k, v in f.items() if k != "price"},
    lambda f: {**f, "price": 1234},
    lambda f: {**f, "price": "1,234"},
    lambda f: {**f, "currency": "cny"},
    lambda f: {**f, "currency": "RMB1"},
    lambda f: {**f, "bidder": "B 1"},
    lambda f: {**f, "pad": "x"},
    lambda f: {**f, "note": "x" * 4000},
    lambda f: {**f, "rate": 1.5},
    lambda f: [f],
])
def test_pad_refuses(change):
    with pytest.raises(CryptoError) as info:
        pad_bid_form(change(FORM))
    assert info.value.code == "bad_bid_form"


def test_largest_form_that_fits():
    bare = len(canonical_json({**FORM, "note": "", "pad": ""}))
    fits = {**FORM, "note": "x" * (BID_FORM_SIZE - bare)}
    assert parse_canonical(pad_bid_form(fits))["pad"] == ""
    with pytest.raises(CryptoError):
        pad_bid_form({**FORM, "note": "x" * (BID_FORM_SIZE - bare + 1)})


def test_parse_refuses_bad_forms():
    good = pad_bid_form(FORM)
    unpadded = canonical_json(FORM)
    not_canonical = good.replace(b'{"bidder"', b'{ "bidder"', 1)[:-1]
    bad_pad = good.replace(b"    ", b"   x", 1)
    for data in (unpadded, good[:-1], good + b" ", not_canonical, bad_pad, b" " * 4096):
        with pytest.raises(CryptoError) as info:
            parse_bid_form(data)
        assert info.value.code == "bad_bid_form"
    for expected in ({"tender": "T-2"}, {"lot": "L2"}, {"bidder": "B2"}):
        with pytest.raises(CryptoError) as info:
            parse_bid_form(good, **expected)
        assert info.value.code == "bid_form_mismatch"
