"""REG-REQs answered recently, so that a carrier delivering one MO twice gets the same proof back, not a second one.

Theory of operation
-------------------
A proof is a pure function of (number, push token, request id, issue time): the issue time enters as its expiry
(``floor(issued_at + ttl)``), so two issues of one request give the same proof only within one second, and a
carrier redelivering an MO two seconds later (an SMSC that missed our deliver_sm_resp, a resend after a
reconnect) would get a second, different proof -- a second pending binding, a second usable proof. Both are
single use and for the same device, so that is no forgery; but the protocol promises one proof per request.

:class:`RecentRequests` remembers when each request was first answered, for :attr:`RecentRequests.window`
seconds: a repeat within the window is issued at the *first* issue time, which makes the very same proof (same
MAC, so the same proof id), and the store records it once (``record_pending`` is idempotent for a proof id it
already holds for that request). The REG-RESP is still sent again: the repeat may be the phone's own retry after
its first REG-RESP was lost, and withholding the answer would leave that phone with no proof at all; what the
window guarantees is one *proof*, not one SMS. A repeat after the window gets a fresh proof, as before.

The key is a 64-bit digest of (number, push token, request id). A collision between two requests can only pin
one request's issue time to the other's, which shortens its proof's life by at most the window; the MAC still
binds the proof to its own number, token and request id, so nothing can be redeemed that was not asked for.

Memory is bounded by :attr:`RecentRequests.max_entries`: entries leave in arrival order once older than the
window, and the oldest goes first at the cap (a repeat of it then gets a fresh proof, the behaviour without this
module). Pure: time is the ``now`` argument, the service's clock that stamps proofs (so a virtual-time run gets
the same answers as a wall-clock one). A clock stepped back makes earlier entries look like the future: they are
not used, and a fresh proof is issued.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Final

__all__ = ["DEFAULT_MAX_ENTRIES", "DEFAULT_WINDOW", "RecentRequests"]

#: Seconds a request's first issue time is remembered. Long enough for a carrier's redelivery after a reconnect,
#: and short next to the default proof validity (600 s), so a repeat's proof keeps most of its life.
DEFAULT_WINDOW: Final = 60.0
#: Requests remembered at most (about 165 bytes each by tracemalloc, so 165 MB at the cap, as much as the
#: service's million awaited MT ids): a minute of 16k REG-REQ/s, beyond the store's pace.
DEFAULT_MAX_ENTRIES: Final = 1_000_000


def _key(e164: str, push_token: str, request_id: int) -> int:
    digest = hashlib.blake2b(f"{e164}\0{push_token}\0{request_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class RecentRequests:
    """When each recent REG-REQ was first answered (see the module's theory of operation). Not thread-safe."""

    def __init__(self, window: float = DEFAULT_WINDOW, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if not window >= 0:
            raise ValueError(f"window must be a number of seconds >= 0, not {window!r}")
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, not {max_entries}")
        self.window = float(window)
        self.max_entries = max_entries
        self._first: OrderedDict[int, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._first)

    def issue_time(self, e164: str, push_token: str, request_id: int, now: float) -> float:
        """The time to issue this request's proof at: its first issue time if that was within the window before
        ``now``, else ``now`` (remembered as its first)."""
        self._forget_before(now - self.window)
        key = _key(e164, push_token, request_id)
        first = self._first.get(key)
        if first is not None and 0 <= now - first < self.window:
            return first
        # Not seen, seen too long ago, or "seen" in the future of a clock stepped back: a fresh issue, which
        # becomes the first. Moved to the end so arrival order stays what the sweep relies on.
        self._first[key] = now
        self._first.move_to_end(key)
        if len(self._first) > self.max_entries:
            self._first.popitem(last=False)
        return now

    def _forget_before(self, cutoff: float) -> None:
        first = self._first
        while first:
            oldest = next(iter(first.values()))
            if oldest >= cutoff:
                return
            first.popitem(last=False)
