"""Back-off: how long a carrier link waits before it tries again -- an MT after a failed submit, every MT after a
throttle, a bind after a lost session.

Theory of operation
-------------------
One policy, exponential, jittered and capped, for every ESME of this service's shape: identity-core's
:class:`~identity_core.gateway.CarrierGateway` and the in-process core's ``EsmeGateway`` (carrier_sim's runner)
both take their pauses from here, so that the two meet an SMSC with the same schedule.

* **Resending one MT** (:func:`resend_delay`): a submit went unanswered or its connection dropped, so the MT goes
  again on the next session -- after ``throttle_initial`` seconds for the first copy, doubling with each further
  copy up to ``throttle_max``, so that an SMSC failing every submit is not met with a resend the moment each new
  session is bound.
* **Pausing the link** (:class:`ThrottlePause`): ESME_RTHROTTLED or ESME_RMSGQFUL is the SMSC asking the *bind* to
  slow down, so every submit waits until :attr:`ThrottlePause.until`. The pause starts at ``throttle_initial``,
  doubles with each further throttle up to ``throttle_max``, and halves for every submit accepted after it ended
  (dropping to none below ``throttle_initial``). A window's worth of refusals to submits that were on the wire
  together is one throttle, not ``window`` of them: a refusal of a submit sent before the current pause began is
  already answered by it.
* **Rebinding** uses :func:`jittered` around its own doubling from ``reconnect_initial`` to ``reconnect_max``.

Jitter (:func:`jittered`) is never below the nominal delay -- an SMSC judges the back-off against it -- and up to
half again above it, so that many gateways knocked off by one SMSC restart do not come back in lock step; but
never past the configured maximum, which operators set as the longest pause they accept. Pauses at the cap are
equal, but the offsets the jitter spread the gateways by on the way up remain, so they still do not come back
together. Each call draws exactly one number from the caller's generator, so a seeded generator gives the same
schedule run after run (the in-process core seeds it by carrier, keeping virtual runs reproducible).

Pure: time enters as a ``now`` argument, randomness as the caller's :class:`random.Random`; the sleeping is the
gateways' job.
"""

from __future__ import annotations

import random

__all__ = ["ThrottlePause", "jittered", "resend_delay"]


def jittered(delay: float, rng: random.Random, cap: float) -> float:
    """``delay`` stretched by a random factor in [1, 1.5], at most ``cap`` (module docstring)."""
    return min(delay * rng.uniform(1.0, 1.5), cap)


def resend_delay(resends: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Pause before sending one MT again for the ``resends + 1``-th time: doubling from ``initial`` up to
    ``maximum`` (a link's ``throttle_initial`` and ``throttle_max``), jittered."""
    # min(resends, 64): a huge count neither overflows the float nor passes the cap.
    return jittered(min(maximum, initial * 2.0 ** min(resends, 64)), rng, maximum)


class ThrottlePause:
    """The pause a whole link keeps after the SMSC throttled it (module docstring); times in the caller's clock."""

    __slots__ = ("delay", "initial", "maximum", "started", "until")

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        #: No submit leaves before this time; the pause that began at :attr:`started` lasted about :attr:`delay`,
        #: which doubles while the SMSC keeps refusing and halves while it accepts (0: not throttled lately).
        self.until = float("-inf")
        self.started = float("-inf")
        self.delay = 0.0

    def throttled(self, sent_at: float, now: float, rng: random.Random) -> None:
        """The SMSC refused, for now, a submit sent at ``sent_at``: pause (longer) from ``now``."""
        if sent_at < self.started:
            return  # sent before the current (or last) pause began: that pause already answers it
        self.delay = min(self.maximum, max(self.initial, self.delay * 2))
        self.started = now
        self.until = now + jittered(self.delay, rng, self.maximum)

    def accepted(self, sent_at: float) -> None:
        """The SMSC accepted a submit sent at ``sent_at``: if it was sent after the last pause, the SMSC keeps up
        again, so the next pause starts shorter."""
        if self.delay and sent_at >= self.until:
            half = self.delay / 2
            self.delay = half if half >= self.initial else 0.0
