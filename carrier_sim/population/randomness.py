"""Counter-based randomness: every phone's k-th draw is a pure function of (scenario seed, phone index, stream, k).

Theory of operation
-------------------
A sharded run must produce the same phones and the same choices whichever process holds phone ``i``. A stateful
generator (``numpy.random.Generator``) cannot give that cheaply: one generator per phone costs a Python object and
~10 µs to seed, a million times over, and one generator per shard makes phone ``i``'s draws depend on which phones
came before it in the shard. So draws are *hashed*, not *generated*:

    bits(i, stream, k) = mix64(mix64(i·γ + key(seed, stream)) ⊕ (k+1)·γ')

where ``mix64`` is the SplitMix64 output function (a bijection on 64-bit words with full avalanche) and γ, γ' are
odd "golden" constants. Everything is plain uint64 arithmetic on numpy arrays, so a million draws cost a few
milliseconds, and the result for one phone never looks at any other phone. SplitMix64 itself is exactly this
construction with ``k`` folded into the counter; it passes BigCrush, which is far more than a load simulator needs.

Two consumers sit on top:

* :class:`CounterRng` turns bits into uniforms in the open interval (0, 1) and uniforms into samples of the
  scenario's :class:`~carrier_sim.scenario.model.Distribution` kinds by their inverse CDF (one uniform per sample,
  so a sample is monotone in its uniform and streams never interleave).
* :class:`KeyedPermutation` is a keyed bijection of ``[0, n)`` (a small Feistel network with cycle walking). It lets
  quotas be *exact* ("5 % absent" means exactly round(0.05·N) phones) while staying a pure per-phone function and
  invertible (MSISDN → phone index without a table).
"""

from __future__ import annotations

import enum

import numpy as np
from numpy.typing import ArrayLike, NDArray

from carrier_sim.scenario.model import Distribution

__all__ = ["CounterRng", "KeyedPermutation", "Stream", "inverse_normal_cdf", "mix64", "quantile"]

_M64 = (1 << 64) - 1
# Odd constants: the golden-ratio increment of SplitMix64 and a second, unrelated odd constant for the draw counter,
# so that (i, k) and (i', k') cannot line up by a shared stride.
_GAMMA = 0x9E3779B97F4A7C15
_GAMMA_K = 0xD1B54A32D192ED03
_MUL1 = 0xBF58476D1CE4E5B9
_MUL2 = 0x94D049BB133111EB
# 2**-52: uniforms take the top 52 bits of a word, not 53. With 53, the top cell centre (2**53 - 1) + 0.5 is not a
# double and rounds up to 2**53, so the "open" interval returned exactly 1.0 (an infinite exponential think time, a
# NaN lognormal). With 52 bits, (2**52 - 1) + 0.5 is exact and the largest uniform is 1 - 2**-53.
_TWO_M52 = 1.0 / (1 << 52)


class Stream(enum.IntEnum):
    """Named, independent streams of draws per phone.

    A new consumer takes a new member rather than sharing one: streams are separated by key, so adding a draw to
    one stream never shifts the values another stream sees. Values are part of the reproducibility contract —
    never renumber a member, only append.
    """

    CARRIER = 1
    CONDITION = 2
    FLOW = 3
    ARRIVAL_PICK = 4
    ARRIVAL_TIME = 5
    THINK = 6
    PUSH_TOKEN = 7
    RECEIPT = 8
    EVENT = 9
    FAULT = 10
    CLOSED_ORDER = 11
    USER = 64  # first value free for consumers outside this package: Stream.USER + n


def _mix64_int(x: int) -> int:
    """SplitMix64's output function on a Python int (for keys, computed once per stream)."""
    x &= _M64
    x ^= x >> 30
    x = (x * _MUL1) & _M64
    x ^= x >> 27
    x = (x * _MUL2) & _M64
    x ^= x >> 31
    return x


def _fold_seed(seed: int) -> int:
    """Any Python int (negative, or wider than 64 bits) as one 64-bit word, every bit of it counting."""
    if seed < 0:
        seed = (-seed << 1) | 1  # keep -1 and 1 apart
    word = 0
    while True:
        word = _mix64_int(word ^ (seed & _M64))
        seed >>= 64
        if seed == 0:
            return word


def mix64(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """SplitMix64's output function, elementwise; returns a new array (``x`` is left alone).

    In-place ufuncs on one scratch array: the naive ``x ^ (x >> 30)`` spelling allocates two temporaries per step,
    which doubles the time on a million-element column.
    """
    out = np.array(x, dtype=np.uint64, copy=True)
    tmp = np.empty_like(out)
    np.right_shift(out, np.uint64(30), out=tmp)
    np.bitwise_xor(out, tmp, out=out)
    np.multiply(out, np.uint64(_MUL1), out=out)
    np.right_shift(out, np.uint64(27), out=tmp)
    np.bitwise_xor(out, tmp, out=out)
    np.multiply(out, np.uint64(_MUL2), out=out)
    np.right_shift(out, np.uint64(31), out=tmp)
    np.bitwise_xor(out, tmp, out=out)
    return out


def _as_u64(values: ArrayLike) -> NDArray[np.uint64]:
    """Indices/counters as uint64 words; negative values are a caller bug, not a wrap-around."""
    arr = np.asarray(values)
    if arr.dtype.kind == "i" and arr.size and int(arr.min()) < 0:
        raise ValueError("phone indices and draw counters must be non-negative")
    return arr.astype(np.uint64, copy=False)


# Acklam's rational approximation of the normal quantile (relative error < 1.15e-9 over (0, 1)); numpy has no
# vectorised erfinv and scipy is not a dependency. Coefficients from P. J. Acklam's published algorithm.
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
      -3.066479806614716e01, 2.506628277459239e00)
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
      -1.328068155288572e01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
      4.374664141464968e00, 2.938163982698783e00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
_P_LOW = 0.02425


def _tail(q: NDArray[np.float64]) -> NDArray[np.float64]:
    """Acklam's tail branch for ``q = sqrt(-2 log p)``, p the distance to the nearer end of (0, 1)."""
    num = ((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]
    den = (((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0
    return np.asarray(num / den, dtype=np.float64)


def inverse_normal_cdf(u: NDArray[np.float64]) -> NDArray[np.float64]:
    """Φ⁻¹(u) for u in the open interval (0, 1), elementwise (relative error below 1.2e-9)."""
    u = np.asarray(u, dtype=np.float64)
    z = np.empty_like(u)
    low = u < _P_LOW
    high = u > 1.0 - _P_LOW
    mid = ~(low | high)
    if mid.any():
        q = u[mid] - 0.5
        r = q * q
        num = (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q
        den = ((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0
        z[mid] = num / den
    if low.any():
        z[low] = _tail(np.sqrt(-2.0 * np.log(u[low])))
    if high.any():
        z[high] = -_tail(np.sqrt(-2.0 * np.log1p(-u[high])))
    return z


def quantile(dist: Distribution, u: NDArray[np.float64]) -> NDArray[np.float64]:
    """The ``dist`` sample whose CDF value is ``u`` (inverse-transform sampling), elementwise, u in (0, 1).

    ``fixed``: value; ``uniform``: low + (high − low)·u; ``exponential``: −mean·ln(1 − u); ``lognormal``:
    median·exp(sigma·Φ⁻¹(u)) (the median of a lognormal is e^μ, which is why the model names it ``median``).
    """
    u = np.asarray(u, dtype=np.float64)
    if dist.kind == "fixed":
        return np.full(u.shape, dist.value, dtype=np.float64)
    if dist.kind == "uniform":
        return np.asarray(dist.low + (dist.high - dist.low) * u, dtype=np.float64)
    if dist.kind == "exponential":
        return np.asarray(-dist.mean * np.log1p(-u), dtype=np.float64)
    if dist.kind == "lognormal":
        return np.asarray(dist.median * np.exp(dist.sigma * inverse_normal_cdf(u)), dtype=np.float64)
    raise ValueError(f"unknown distribution kind {dist.kind!r}")


class CounterRng:
    """The scenario's counter-based generator: draws for any phones, any stream, any draw number, in any order.

    Holds only the seed; it is safe to share between threads and to rebuild in every shard.
    """

    __slots__ = ("_keys", "seed")

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._keys: dict[int, int] = {}

    def key(self, stream: int) -> int:
        """The 64-bit key of one stream under this seed."""
        found = self._keys.get(stream)
        if found is None:
            found = _mix64_int(_fold_seed(self.seed) ^ _mix64_int((int(stream) + 1) * _GAMMA))
            self._keys[stream] = found
        return found

    def bits(self, index: ArrayLike, stream: int, k: ArrayLike = 0) -> NDArray[np.uint64]:
        """64 random bits per element of ``index`` (global phone indices), draw number ``k`` (scalar or array
        broadcast against ``index``)."""
        idx = _as_u64(index)
        draw = _as_u64(k)
        with np.errstate(over="ignore"):  # wrap-around is the point of the arithmetic
            first = mix64(idx * np.uint64(_GAMMA) + np.uint64(self.key(stream)))
            salt = (draw + np.uint64(1)) * np.uint64(_GAMMA_K)
            return mix64(np.bitwise_xor(first, salt))

    def uniform(self, index: ArrayLike, stream: int, k: ArrayLike = 0) -> NDArray[np.float64]:
        """Uniform floats in the open interval (0, 1): the top 52 bits, centred in their cell, so that neither 0
        (log(0) in the exponential) nor 1 can come out (from 2**-53 to 1 - 2**-53; see ``_TWO_M52`` for why not
        53 bits)."""
        top = np.right_shift(self.bits(index, stream, k), np.uint64(12))
        return (top.astype(np.float64) + 0.5) * _TWO_M52

    def sample(self, dist: Distribution, index: ArrayLike, stream: int, k: ArrayLike = 0) -> NDArray[np.float64]:
        """Samples of ``dist``, one per element of ``index``, by inverse transform of :meth:`uniform`."""
        return quantile(dist, self.uniform(index, stream, k))

    def choice(self, weights: ArrayLike, index: ArrayLike, stream: int, k: ArrayLike = 0) -> NDArray[np.int64]:
        """A weighted pick among ``len(weights)`` options per phone (independent draws, so counts are
        multinomial rather than exact; use :class:`KeyedPermutation` blocks when exact shares matter)."""
        w = np.asarray(weights, dtype=np.float64)
        total = float(w.sum())
        if w.ndim != 1 or w.size == 0 or total <= 0 or bool((w < 0).any()):
            raise ValueError("weights must be a non-empty vector of non-negative numbers with a positive sum")
        edges = np.cumsum(w) / total
        picked = np.searchsorted(edges, self.uniform(index, stream, k), side="right")
        # cumsum rounding can leave the last edge a hair under 1.0; a draw above it belongs to the last option.
        return np.minimum(picked, w.size - 1).astype(np.int64)


class KeyedPermutation:
    """A keyed bijection of ``[0, size)``: a 4-round balanced Feistel network on the smallest even number of bits
    that covers ``size``, made to stay inside the domain by cycle walking (re-encrypt while the result is ≥ size;
    the walk always ends because a permutation's cycle through x returns to x, which is < size).

    The Feistel domain is at most 4× the size, so a walk averages under 4 steps; the arrays shrink as elements
    land, so vectorised cost stays a small multiple of one pass.
    """

    __slots__ = ("_half", "_mask", "_round_keys", "size")

    ROUNDS = 4

    def __init__(self, size: int, seed: int, purpose: int) -> None:
        if size < 0:
            raise ValueError("a permutation's size cannot be negative")
        self.size = size
        bits = max(2, (max(size, 2) - 1).bit_length())
        self._half = (bits + 1) // 2
        self._mask = (1 << self._half) - 1
        base = _mix64_int(_fold_seed(seed) ^ _mix64_int((0x5EED0000 + purpose) * _GAMMA))
        self._round_keys = tuple(_mix64_int(base + r * _GAMMA) for r in range(self.ROUNDS))

    def _round(self, half: NDArray[np.uint64], key: int) -> NDArray[np.uint64]:
        with np.errstate(over="ignore"):
            return mix64(half + np.uint64(key)) & np.uint64(self._mask)

    def _encrypt(self, x: NDArray[np.uint64]) -> NDArray[np.uint64]:
        h = np.uint64(self._half)
        left, right = x >> h, x & np.uint64(self._mask)
        for key in self._round_keys:
            left, right = right, left ^ self._round(right, key)
        return (left << h) | right

    def _decrypt(self, y: NDArray[np.uint64]) -> NDArray[np.uint64]:
        h = np.uint64(self._half)
        left, right = y >> h, y & np.uint64(self._mask)
        for key in reversed(self._round_keys):
            left, right = right ^ self._round(left, key), left
        return (left << h) | right

    def _walk(self, values: ArrayLike, inverse: bool) -> NDArray[np.int64]:
        x = _as_u64(values)
        if x.size and int(x.max()) >= self.size:
            raise ValueError(f"values must lie in [0, {self.size})")
        step = self._decrypt if inverse else self._encrypt
        out = step(x.ravel())
        limit = np.uint64(self.size)
        outside = np.flatnonzero(out >= limit)
        while outside.size:
            again = step(out[outside])
            out[outside] = again
            outside = outside[again >= limit]
        return out.astype(np.int64).reshape(np.shape(values))

    def forward(self, values: ArrayLike) -> NDArray[np.int64]:
        """π(values), elementwise."""
        return self._walk(values, inverse=False)

    def inverse(self, values: ArrayLike) -> NDArray[np.int64]:
        """π⁻¹(values), elementwise."""
        return self._walk(values, inverse=True)
