"""Injected CAMARA failures: 429 TOO_MANY_REQUESTS and 503 UNAVAILABLE at a given share of requests.

Real carriers' API gateways throttle and fall over; an identity service's retry paths only run if the emulator
does too. Each request gets one uniform draw in [0, 1): below ``too_many_requests`` it is throttled, below
``too_many_requests + unavailable`` the service is unavailable, otherwise it is answered.

The draw is *keyed*, not taken from a sequential random stream: it hashes (seed, path, body, how many times this
same request was seen before). Concurrent requests arriving in a different order therefore get the same fates
run after run, and a client's retry of a refused request (same path and body) gets a fresh draw, so a retry can
succeed. Headers are left out of the key on purpose: clients put a fresh ``x-correlator`` on every attempt.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

from carrier_sim.camara.errors import CamaraError, TooManyRequests, Unavailable

__all__ = ["FaultInjector", "Faults"]


@dataclass(frozen=True, slots=True)
class Faults:
    """Shares (0–1) of requests to refuse with 429 and with 503; ``seed`` keys the draws."""

    too_many_requests: float = 0.0
    unavailable: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for share in (self.too_many_requests, self.unavailable):
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"fault share must lie in [0, 1], got {share}")
        if self.too_many_requests + self.unavailable > 1.0:
            raise ValueError("fault shares must not sum to more than 1")

    @property
    def active(self) -> bool:
        """Whether any request can be refused."""
        return self.too_many_requests > 0.0 or self.unavailable > 0.0


class FaultInjector:
    """Decides, request by request, whether :class:`Faults` refuses it."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        # Attempts seen per (caller, path, body) digest: 16 bytes per distinct request, kept for the door's lifetime.
        self._seen: Counter[bytes] = Counter()

    def draw(self, path: str, body: bytes, caller: str = "") -> float:
        """The uniform draw in [0, 1) for this attempt at (``caller``, ``path``, ``body``). ``caller`` is what tells
        requests with equal bodies apart -- the Authorization header: with a per-device token a SIM Swap check's
        body is ``{}`` and a device-phone-number GET has none, so without it every phone would share one attempt
        counter and which phone met a fault would depend on the order the requests arrived in.

        ``caller`` and ``path`` may hold lone surrogates: aiohttp decodes a header's non-UTF-8 bytes with
        ``surrogateescape``, and such a request must still get its draw (and then its 401). Encoding them back with
        ``surrogateescape`` gives those bytes as sent, and the same bytes as plain UTF-8 for any other string, so
        the draw of every valid caller is unchanged."""
        key_parts = (caller.encode("utf-8", "surrogateescape"), path.encode("utf-8", "surrogateescape"), body)
        request = hashlib.blake2b(b"\0".join(key_parts), digest_size=16).digest()
        attempt = self._seen[request]
        self._seen[request] = attempt + 1
        key = f"{self.faults.seed}:{attempt}:".encode() + request
        value = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")
        return value / 2**64

    def refuse(self, path: str, body: bytes, caller: str = "") -> CamaraError | None:
        """The error to answer this attempt with, or None to answer it normally (``caller``: see :meth:`draw`)."""
        if not self.faults.active:
            return None
        u = self.draw(path, body, caller)
        if u < self.faults.too_many_requests:
            return TooManyRequests()
        if u < self.faults.too_many_requests + self.faults.unavailable:
            return Unavailable()
        return None
