"""Shamir secret sharing over GF(2^8), byte by byte (PROTOCOL §4).

The field is GF(2)[x] / (x^8 + x^4 + x^3 + x + 1), i.e. 0x11b as in AES, and custodian
``i`` gets the point at x = i. Coefficients are fresh uniform random bytes, zero allowed,
so with k = 1 every share equals the secret. Shamir alone has no integrity: the opener
checks the commitment after combining (see ``crypto.opening``).
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

from crypto.errors import CryptoError

MAX_SHARES = 255


def gf_mul(a: int, b: int) -> int:
    """Multiply in GF(2^8) mod 0x11b, without tables or branches on the operands."""
    product = 0
    for _ in range(8):
        product ^= a & -(b & 1)           # add a when the low bit of b is set
        carry = -(a >> 7 & 1)             # reduce when a overflows 8 bits
        a = ((a << 1) ^ (0x11B & carry)) & 0xFF
        b >>= 1
    return product


def gf_inv(a: int) -> int:
    """The multiplicative inverse a^254 (only applied to public x-coordinates)."""
    if a == 0:
        raise ZeroDivisionError("0 has no inverse in GF(2^8)")
    result, power, exponent = 1, a, 254
    while exponent:
        if exponent & 1:
            result = gf_mul(result, power)
        power = gf_mul(power, power)
        exponent >>= 1
    return result


def split(secret: bytes, k: int, n: int,
          randbytes: Callable[[int], bytes] = os.urandom) -> list[tuple[int, bytes]]:
    """Split ``secret`` into ``n`` shares ``(i, y_bytes)``, any ``k`` of which recover it."""
    if type(k) is not int or type(n) is not int or not 1 <= k <= n <= MAX_SHARES:
        raise CryptoError("bad_share", "need 1 <= k <= n <= 255")
    if not isinstance(secret, (bytes, bytearray)):
        raise TypeError("the secret is bytes")
    # coefficients[j][b] is the x^(j+1) coefficient of the polynomial for byte b
    coefficients = [randbytes(len(secret)) for _ in range(k - 1)]
    for row in coefficients:
        if len(row) != len(secret):
            raise ValueError("randbytes returned the wrong number of bytes")
    shares = []
    for x in range(1, n + 1):
        y = bytearray(len(secret))
        for b, secret_byte in enumerate(secret):
            # Horner: ((c_{k-1} x + c_{k-2}) x + ...) x + secret
            acc = 0
            for row in reversed(coefficients):
                acc = gf_mul(acc, x) ^ row[b]
            y[b] = gf_mul(acc, x) ^ secret_byte
        shares.append((x, bytes(y)))
    return shares


def combine(points: Sequence[tuple[int, bytes]], n: int | None = None) -> bytes:
    """Interpolate the shares ``(i, y_bytes)`` at x = 0.

    Rejects an empty list, index 0, indices above ``n`` (or 255), duplicate indices and
    shares of different lengths. It cannot tell a wrong share from a right one.
    """
    limit = MAX_SHARES if n is None else min(n, MAX_SHARES)
    if not points:
        raise CryptoError("not_enough_shares", "no shares to combine")
    seen: set[int] = set()
    length = None
    for index, y in points:
        if type(index) is not int or not 1 <= index <= limit:
            raise CryptoError("bad_share", f"share index {index!r} is outside 1..{limit}")
        if index in seen:
            raise CryptoError("bad_share", f"share index {index} appears twice")
        seen.add(index)
        if not isinstance(y, (bytes, bytearray)) or (length is not None and len(y) != length):
            raise CryptoError("bad_share", "shares differ in length")
        length = len(y)
    xs = [index for index, _ in points]
    # Lagrange basis at 0: l_j(0) = prod_{m != j} x_m / (x_m - x_j); minus is xor in GF(2^8)
    weights = []
    for j, xj in enumerate(xs):
        numerator, denominator = 1, 1
        for m, xm in enumerate(xs):
            if m != j:
                numerator = gf_mul(numerator, xm)
                denominator = gf_mul(denominator, xm ^ xj)
        weights.append(gf_mul(numerator, gf_inv(denominator)))
    secret = bytearray(length or 0)
    for weight, (_, y) in zip(weights, points):
        for b, y_byte in enumerate(y):
            secret[b] ^= gf_mul(weight, y_byte)
    return bytes(secret)
