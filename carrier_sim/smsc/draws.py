"""Keyed draws: every random decision of an SMSC is a pure function of what it is about, not of when it is made.

Theory of operation. A sharded run (``--workers N``) gives each shard its own SMSC per carrier, and each shard's
SMSC sees only its own phones' traffic, interleaved differently from a single SMSC's. A sequential generator
(``random.Random(seed)`` drawn in order of events) then hands phone ``i``'s message a different number in every
shard layout. So, as for the population (:mod:`carrier_sim.population.randomness`), draws are *hashed*, not
*generated*:

    u(kind, subject, n) = mix64(mix64(key(seed, kind) ⊕ word(subject)) ⊕ (n+1)·γ')   (top 52 bits, in (0, 1))

- ``kind``: which decision (:class:`Draw`), each its own key, so adding a draw of one kind never moves another.
- ``subject``: what the decision is about -- a message's destination address (a phone's number), or, for
  decisions about a session, its system_id and bind ordinal. ``word`` is a stable 64-bit digest of it
  (BLAKE2b; Python's ``hash`` of a str changes from process to process).
- ``n``: which of the subject's events this is -- a per-subject counter the caller keeps (:class:`Ordinals`).

The key per kind is :meth:`CounterRng.key <carrier_sim.population.randomness.CounterRng.key>` under the SMSC's seed
on a stream of its own (``Stream.USER + 32 + kind``), and the mixing is SplitMix64's, as there -- computed here on
Python ints, one draw at a time, since the SMSC decides one message at a time.
"""

from __future__ import annotations

import enum
import math
from hashlib import blake2b

from carrier_sim.population.randomness import CounterRng, Stream

__all__ = ["Draw", "KeyedDraws", "Ordinals"]

_M64 = (1 << 64) - 1
_GAMMA_K = 0xD1B54A32D192ED03
_MUL1 = 0xBF58476D1CE4E5B9
_MUL2 = 0x94D049BB133111EB
# 52 bits, as CounterRng.uniform: with 53, (2**53 - 1) + 0.5 rounds to 2**53 and the draw is exactly 1.0.
_TWO_M52 = 1.0 / (1 << 52)
#: Where the SMSC's streams start among the population's user streams (Stream.USER + n).
_STREAM_BASE = int(Stream.USER) + 32


class Draw(enum.IntEnum):
    """The SMSC's decisions, one stream each. Part of the reproducibility contract: never renumber, only append."""

    GENERIC_NACK = 1
    DROP_RESPONSE = 2
    DELAY_RESPONSE = 3
    RECEIPT_BEFORE_RESPONSE = 4
    TCP_RESET = 5
    RECEIPT_DELAY = 6
    LOST_RECEIPT = 7
    LATE_RECEIPT = 8
    DUPLICATE_RECEIPT = 9
    UNBIND_WITH_FULL_WINDOW = 10
    ROAMING_DELAY = 11


def _mix(x: int) -> int:
    x ^= x >> 30
    x = (x * _MUL1) & _M64
    x ^= x >> 27
    x = (x * _MUL2) & _M64
    return x ^ (x >> 31)


def _scaled(low: float, high: float, u: float) -> float:
    """``u`` in (0, 1) mapped into [low, high), for ``low < high``."""
    value = low + (high - low) * u
    if value >= high:
        # The sum rounded up onto ``high`` (u close to 1, a range tiny beside ``low``, or a width that overflowed):
        # the float just below it instead. Only such values move, so every draw already in range stays as it was
        # -- the reproducibility contract.
        return math.nextafter(high, low)
    return value


def subject_word(subject: str) -> int:
    """A stable 64-bit digest of a subject (the same in every process, unlike ``hash``)."""
    return int.from_bytes(blake2b(subject.encode("utf-8", "surrogateescape"), digest_size=8).digest(), "little")


class KeyedDraws:
    """Uniforms in (0, 1) keyed by (seed, kind, subject, n). Holds only the per-kind keys: pure, shareable."""

    __slots__ = ("_keys",)

    def __init__(self, seed: int) -> None:
        rng = CounterRng(seed)
        self._keys = {kind: rng.key(_STREAM_BASE + int(kind)) for kind in Draw}

    def uniform(self, kind: Draw, word: int, n: int) -> float:
        """The draw of ``kind`` for the subject whose :func:`subject_word` is ``word``, its ``n``-th event."""
        bits = _mix(_mix(self._keys[kind] ^ word) ^ (((n + 1) * _GAMMA_K) & _M64))
        return ((bits >> 12) + 0.5) * _TWO_M52

    def between(self, kind: Draw, word: int, n: int, low: float, high: float) -> float:
        """A uniform delay in [low, high) by the same key (``low`` when the range is empty)."""
        if high <= low:
            return low
        return _scaled(low, high, self.uniform(kind, word, n))


class Ordinals:
    """Per-subject event counters, with each subject's word remembered: ``next(subject)`` is (word, n) for the
    subject's n-th event (from 0). Grows by one entry per distinct subject -- at most one per phone number the
    SMSC has carried messages for."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: dict[str, list[int]] = {}

    def entry(self, subject: str) -> list[int]:
        """The subject's live record, ``[word, n, retries]``, for a caller that decides itself when an event
        counts (``n``) and keeps a count of attempts that did not (``retries``)."""
        entry = self._seen.get(subject)
        if entry is None:
            entry = self._seen[subject] = [subject_word(subject), 0, 0]
        return entry

    def next(self, subject: str) -> tuple[int, int]:
        """(word, n) of the subject's next event, counted."""
        entry = self._seen.get(subject)
        if entry is None:
            entry = self._seen[subject] = [subject_word(subject), 0, 0]
        n = entry[1]
        entry[1] = n + 1
        return entry[0], n
