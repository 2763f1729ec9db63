"""Velocity limits on REG-REQ and authenticate, and blocking of prefixes that pump traffic.

Theory of operation
-------------------
Every REG-REQ and every authenticate call asks :meth:`VelocityLimiter.check` first. Three token buckets stand in
the way of each kind of request, keyed by

* the number — one phone (or one attacker with one SIM) cannot hammer the service;
* the number's prefix (its first :attr:`VelocityLimits.prefix_digits` digits: country code and range) — a block
  of numbers bought or spoofed together is held back as one;
* the carrier link the request came through — one compromised or misconfigured carrier cannot starve the others.

A request passes only if all three buckets hold a token, and then it takes one from each; a refused request takes
nothing, so being refused at the number level does not also drain the carrier's bucket for everyone else. The
buckets of REG and of authenticate are separate: a phone that registered may still authenticate.

A caller may ask about some scopes only (``scopes=``). Authenticate does: its number and prefix buckets are charged
by *failed* attempts only, and its carrier bucket by valid proofs, keyed by the carrier the binding registered
through. Charging every attempt up front let anyone lock a phone out by sending garbage for its number; a valid
proof is single use and already cost a limited REG-REQ, so it needs no per-number limit of its own
(:meth:`identity_core.service.IdentityService.authenticate`).

SMS pumping (toll fraud: flooding registrations from number ranges whose termination fees the fraudster shares)
is a REG-REQ problem -- every accepted REG-REQ costs an MT SMS. What gives it away is a *sudden* rise in one
prefix's traffic, so each prefix is judged against its own history, not against a fixed count:

* the current rate is REG-REQ attempts over the last :attr:`VelocityLimits.pump_window` seconds (the
  two-window estimate: the previous fixed window's count weighted by how much of it still overlaps the sliding
  window, plus the current one's). Accepted attempts count, and so do those the prefix or carrier bucket refused
  (an empty prefix bucket is what a pump spread over many numbers looks like); attempts refused by their own
  number's bucket do not, so one SIM cannot block its prefix for everyone;
* the baseline is an exponentially weighted moving average of the prefix's rate, one sample per completed fixed
  window, with time constant :attr:`VelocityLimits.pump_baseline` (an empty window is a sample of zero, so a
  prefix that falls silent forgets its history);
* the prefix is blocked when the current rate exceeds ``pump_factor x baseline + pump_floor``. The floor is what
  any prefix may send without history -- a range never seen before, or every range after a restart, since
  baselines live in memory only. By default it is a fifth of ``reg_per_prefix``'s rate (100/s), so a pump is
  caught below what the per-prefix bucket lets through, and a deployment that raises that bucket for a storm
  raises the floor with it.

A blocked prefix stays blocked for :attr:`VelocityLimits.pump_block` seconds: every REG-REQ from it is refused
with PREFIX_BLOCKED and not counted. The counts of the pumping window are thrown away rather than learnt, so the
pump does not raise the baseline it is judged against; the baseline itself survives the block. Authenticate is
not blocked: it costs no SMS, and the phones that got a proof just before the block should still be able to use
it (the per-prefix bucket still limits them). A pump that ramps up over several ``pump_baseline`` periods is
learnt as normal traffic; the per-prefix bucket is the ceiling it then meets.

Per request this costs a dictionary lookup, an increment and a comparison against a threshold computed once per
window; the baseline is updated (one ``exp``) only when a prefix's window rolls over.

Memory stays bounded by construction:

* A bucket that has refilled to its burst is indistinguishable from a bucket never created, so it can be dropped
  without changing any decision. The tables are kept in least-recently-used order and every write looks at the
  two oldest entries and drops them if they are full — idle buckets disappear as traffic moves on.
* Each table also has a hard cap (:attr:`VelocityLimits.max_entries`). Past it, the least recently used entry is
  dropped even if it is not full (a "lossy" eviction, counted in :attr:`VelocityLimiter.lossy_evictions`): under
  a flood of distinct numbers it resets the oldest numbers' buckets rather than grow without end, and the prefix
  and carrier buckets keep limiting the flood meanwhile.
* A pump counter is dropped the same way once both its windows have aged out of the estimate and its decayed
  baseline adds less than 1 % of the floor to the threshold (:data:`_NEGLIGIBLE`); the hard cap applies to it too.
  A flood of random prefixes leaves one attempt each, a baseline far below that, so such entries go after two
  windows. A counter the sweep rolls forward and keeps (a quiet prefix whose baseline still counts) goes to the
  end of the table, so it does not hold up the entries behind it while it decays.

Pure: ``now`` is an argument (seconds, any origin); a clock that steps backwards is taken as standing still until
it passes the latest time seen, so it never mints tokens nor shortens a block. Standing still also stops refill
and the pump windows, so the service feeds a monotonic clock (``IdentityService.limiter_clock``), never the wall
clock an NTP step can move back.
Not thread-safe: one limiter belongs to one event loop.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Final, Literal

from identity_core.refusals import Refusal, RefusalReason

__all__ = ["ALL_SCOPES", "MAX_RETRY_AFTER", "Kind", "Rate", "Scope", "VelocityLimiter", "VelocityLimits"]

Kind = Literal["reg", "auth"]
Scope = Literal["number", "prefix", "carrier"]
#: Every scope a request is limited in, the default of :meth:`VelocityLimiter.check`.
ALL_SCOPES: Final[frozenset[Scope]] = frozenset({"number", "prefix", "carrier"})

#: Oldest entries examined for lossless eviction on each write: enough to keep up with one new entry per write
#: (amortised), small enough to cost nothing measurable.
_SWEEP: Final = 2
#: Pump floor when there is no per-prefix bucket to derive it from, REG-REQs per second.
_DEFAULT_FLOOR: Final = 100.0
#: A pump counter whose decayed baseline adds less than this share of the floor to the threshold says nothing
#: worth keeping: forgetting it lowers that prefix's threshold by under 1 % of the floor.
_NEGLIGIBLE: Final = 0.01
#: Longest wait a refusal's ``retry_after`` states, in seconds (a day). It becomes the HTTP Retry-After header: a
#: rate close to 0 or a huge pump_block put a number of hundreds of digits there (1 / 1e-300 s). Past a day the
#: client had best simply try again; if it is still limited it is told again.
MAX_RETRY_AFTER: Final = 86_400.0


@dataclass(frozen=True, slots=True)
class Rate:
    """A token bucket's shape: sustained requests per second and the burst allowed on top (bucket capacity)."""

    per_second: float
    burst: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.per_second) and self.per_second >= 0):
            raise ValueError(f"per_second must be a finite number >= 0, got {self.per_second!r}")
        if not (math.isfinite(self.burst) and self.burst >= 1):
            # Below one token no request could ever pass; that is a typo, not a limit.
            raise ValueError(f"burst must be a finite number >= 1, got {self.burst!r}")


@dataclass(frozen=True, slots=True)
class VelocityLimits:
    """The limits, as configuration. A ``None`` rate switches that bucket off.

    Field names match the ``[limits]`` table of the service's configuration, where each rate is written as a
    ``[per_second, burst]`` pair; :meth:`from_mapping` converts that shape.
    """

    reg_per_number: Rate | None = field(default_factory=lambda: Rate(0.2, 3.0))
    reg_per_prefix: Rate | None = field(default_factory=lambda: Rate(500.0, 2000.0))
    reg_per_carrier: Rate | None = field(default_factory=lambda: Rate(50_000.0, 100_000.0))
    auth_per_number: Rate | None = field(default_factory=lambda: Rate(0.2, 5.0))
    auth_per_prefix: Rate | None = field(default_factory=lambda: Rate(500.0, 2000.0))
    auth_per_carrier: Rate | None = field(default_factory=lambda: Rate(50_000.0, 100_000.0))
    #: Digits after the '+' that make a prefix (country code and range); shorter numbers are their own prefix.
    prefix_digits: int = 7
    #: Length of the sliding window, in seconds, over which a prefix's current REG-REQ rate is measured.
    pump_window: float = 10.0
    #: Time constant, in seconds, of the moving average that is a prefix's normal rate (its baseline).
    pump_baseline: float = 3600.0
    #: A prefix is blocked when its current rate exceeds ``pump_factor`` x its baseline + the floor.
    pump_factor: float = 3.0
    #: REG-REQs per second any prefix may send on top of ``pump_factor`` x its baseline. None: a fifth of
    #: ``reg_per_prefix``'s rate (at least 1/s), or 100/s when that bucket is off. See :attr:`pump_floor_rate`.
    pump_floor: float | None = None
    #: Seconds a pumping prefix stays blocked.
    pump_block: float = 300.0
    #: Hard cap on entries per table (buckets of one kind and scope, pump counters, blocks).
    max_entries: int = 1_000_000

    def __post_init__(self) -> None:
        if not 1 <= self.prefix_digits <= 15:
            raise ValueError(f"prefix_digits must be 1..15 (E.164 has at most 15 digits), got {self.prefix_digits}")
        if not (math.isfinite(self.pump_window) and self.pump_window > 0):
            raise ValueError(f"pump_window must be a finite number of seconds > 0, got {self.pump_window!r}")
        if not (math.isfinite(self.pump_baseline) and self.pump_baseline >= self.pump_window):
            # A shorter time constant than the window would make the baseline the last window itself: a pump
            # would be its own reference after one window.
            raise ValueError(
                f"pump_baseline must be a finite number of seconds >= pump_window, got {self.pump_baseline!r}"
            )
        if not (math.isfinite(self.pump_factor) and self.pump_factor >= 1):
            raise ValueError(f"pump_factor must be a finite number >= 1, got {self.pump_factor!r}")
        if self.pump_floor is not None and not (math.isfinite(self.pump_floor) and self.pump_floor > 0):
            # A floor of 0 would block a silent prefix on its first REG-REQ.
            raise ValueError(f"pump_floor must be a finite rate per second > 0, got {self.pump_floor!r}")
        if not (math.isfinite(self.pump_block) and self.pump_block >= 0):
            raise ValueError(f"pump_block must be a finite number of seconds >= 0, got {self.pump_block!r}")
        if self.max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {self.max_entries}")
        allowed = self.pump_floor_rate * self.pump_window
        if allowed < 2:
            # A prefix with no history is blocked once its attempts in one window exceed floor x window: below 1 its
            # very first REG-REQ is a "pump", and it is blocked again at each first attempt after the block, forever.
            # A new prefix must be allowed at least its first attempts (a phone's REG-REQ and one retry).
            floor = "pump_floor" if self.pump_floor is not None else "pump_floor (unset: a fifth of reg_per_prefix)"
            raise ValueError(
                f"{floor} x pump_window must be at least 2 REG-REQs, so that a new prefix is allowed its first "
                f"attempts; got {self.pump_floor_rate:g}/s x {self.pump_window:g} s = {allowed:g}"
            )

    @property
    def pump_floor_rate(self) -> float:
        """The floor in force, REG-REQs per second: ``pump_floor``, or the default derived from ``reg_per_prefix``.

        Tied to the per-prefix bucket so that the block fires below what that bucket lets through (a fifth of
        it), and so that raising the bucket for a planned storm does not turn the storm into a "pump".
        """
        if self.pump_floor is not None:
            return self.pump_floor
        if self.reg_per_prefix is None:
            return _DEFAULT_FLOOR
        return max(self.reg_per_prefix.per_second / 5.0, 1.0)

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> VelocityLimits:
        """Build from configuration values: rates as ``(per_second, burst)`` pairs (or None), the rest as is.

        Unknown keys are a ValueError: a misspelt limit must not silently leave the default in force.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown limit(s): {', '.join(unknown)}")
        kwargs: dict[str, object] = {}
        for name, value in values.items():
            if name.endswith(("_per_number", "_per_prefix", "_per_carrier")) and value is not None:
                if isinstance(value, Rate):
                    kwargs[name] = value
                elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
                    kwargs[name] = Rate(float(value[0]), float(value[1]))
                else:
                    raise ValueError(f"{name}: expected [per_second, burst], got {value!r}")
            else:
                kwargs[name] = value
        return cls(**kwargs)  # type: ignore[arg-type]

    def rate(self, kind: Kind, scope: Scope) -> Rate | None:
        """The rate for one kind of request and one scope."""
        rate: Rate | None = getattr(self, f"{kind}_per_{scope}")
        return rate


class _Buckets:
    """Token buckets of one kind and scope: key -> (tokens, stamp), in least-recently-written order."""

    __slots__ = ("burst", "cap", "entries", "lossy_evictions", "rate")

    def __init__(self, rate: Rate, cap: int) -> None:
        self.rate = rate.per_second
        self.burst = rate.burst
        self.cap = cap
        self.entries: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self.lossy_evictions = 0

    def level(self, key: str, now: float) -> tuple[float, float]:
        """Tokens in the bucket at ``now`` and the stamp to write back (never earlier than the stored one)."""
        entry = self.entries.get(key)
        if entry is None:
            return self.burst, now
        tokens, stamp = entry
        if now <= stamp:
            # No time has passed. (check() never lets time run backwards; this keeps the helper right on its own.)
            return tokens, stamp
        return min(self.burst, tokens + (now - stamp) * self.rate), now

    def take(self, key: str, tokens: float, stamp: float, now: float) -> None:
        entries = self.entries
        entries[key] = (tokens - 1.0, stamp)
        entries.move_to_end(key)
        if len(entries) > self.cap:
            _, (old_tokens, old_stamp) = entries.popitem(last=False)
            if not self._full(old_tokens, old_stamp, now):
                self.lossy_evictions += 1
        for _ in range(_SWEEP):
            oldest = next(iter(entries))
            old_tokens, old_stamp = entries[oldest]
            if oldest == key or not self._full(old_tokens, old_stamp, now):
                break
            del entries[oldest]

    def _full(self, tokens: float, stamp: float, now: float) -> bool:
        return now > stamp and tokens + (now - stamp) * self.rate >= self.burst

    def retry_after(self, tokens: float) -> float | None:
        """Seconds until the bucket holds one token again (None if it never refills)."""
        return min(MAX_RETRY_AFTER, (1.0 - tokens) / self.rate) if self.rate > 0 else None


class _PumpCounter:
    """One prefix's REG-REQ attempts: the fixed window ``index`` (and the one before), and its baseline.

    Mutable, so that counting a request allocates nothing; ``limit`` is recomputed only when the window rolls.
    """

    __slots__ = ("baseline", "current", "index", "limit", "previous")

    def __init__(self, index: int, limit: float) -> None:
        #: Index of the current fixed window (``floor(now / pump_window)``). Integers compare exactly.
        self.index = index
        #: Attempts in the window before ``index`` and in window ``index``.
        self.previous = 0
        self.current = 0
        #: Moving average of the prefix's rate (REG-REQs per second) up to the start of window ``index``.
        self.baseline = 0.0
        #: Attempts within one sliding window above which the prefix is blocked.
        self.limit = limit


class VelocityLimiter:
    """Decides whether a REG-REQ or an authenticate call may proceed now. See the module docstring."""

    __slots__ = (
        "_blocks",
        "_buckets",
        "_counters",
        "_latest",
        "_limits",
        "_pump_decay",
        "_pump_floor",
        "blocks_started",
        "lossy_counter_evictions",
    )

    def __init__(self, limits: VelocityLimits) -> None:
        self._limits = limits
        self._buckets: dict[tuple[Kind, str], _Buckets] = {}
        kinds: tuple[Kind, ...] = ("reg", "auth")
        for kind in kinds:
            for scope in ("number", "prefix", "carrier"):
                rate = limits.rate(kind, scope)
                if rate is not None:
                    self._buckets[(kind, scope)] = _Buckets(rate, limits.max_entries)
        # prefix -> its pump counter, in least-recently-written order.
        self._counters: OrderedDict[str, _PumpCounter] = OrderedDict()
        self._pump_floor = limits.pump_floor_rate
        # What is left of the baseline after one window: the weight 1 - alpha of the moving average. Written as
        # exp(-window/tau) so that n empty windows decay it by exactly exp(-n*window/tau), however they are rolled.
        self._pump_decay = math.exp(-limits.pump_window / limits.pump_baseline)
        # prefix -> time the block ends; insertion order is block order, which is end order (one duration).
        self._blocks: OrderedDict[str, float] = OrderedDict()
        self._latest = -math.inf
        #: Blocks started since creation (a counter for metrics).
        self.blocks_started = 0
        #: Pump counters dropped at the cap while they still counted (a counter for metrics).
        self.lossy_counter_evictions = 0

    @property
    def limits(self) -> VelocityLimits:
        """The configuration in force."""
        return self._limits

    def prefix_of(self, e164: str) -> str:
        """The prefix a number is counted under: its first ``prefix_digits`` digits after the '+'."""
        digits = e164[1:] if e164.startswith("+") else e164
        return digits[: self._limits.prefix_digits]

    def check(
        self, kind: Kind, e164: str, carrier: str, now: float, *, scopes: Collection[Scope] = ALL_SCOPES
    ) -> Refusal | None:
        """None if the request may proceed (and it is counted), else the refusal.

        Only the buckets of ``scopes`` are looked at and charged (the others are neither); the prefix-pumping
        block of REG-REQ applies whatever the scopes. Never raises for any ``e164`` or ``carrier`` string (they
        come from the network); an unknown ``kind`` is the caller's bug and a ValueError, because letting it
        through unlimited would fail open.
        """
        if kind not in ("reg", "auth"):
            raise ValueError(f"kind must be 'reg' or 'auth', got {kind!r}")
        # A clock that steps back is treated as standing still. Besides never minting tokens, this is what makes
        # evicting a full bucket exact: it was full at the latest time seen, so it is full at every time used
        # from then on, just like the fresh bucket that replaces it.
        if now < self._latest:
            now = self._latest
        else:
            self._latest = now
        prefix = self.prefix_of(e164)
        if kind == "reg":
            refusal = self._blocked(prefix, now)
            if refusal is not None:
                return refusal

        # Look at all three buckets before touching any, so a refusal consumes nothing.
        levels: list[tuple[_Buckets, str, float, float]] = []
        refused: Refusal | None = None
        refused_scope: Scope | None = None
        pairs: tuple[tuple[Scope, str], ...] = (("number", e164), ("prefix", prefix), ("carrier", carrier))
        for scope, key in pairs:
            buckets = self._buckets.get((kind, scope))
            if buckets is None or scope not in scopes:
                continue
            tokens, stamp = buckets.level(key, now)
            if tokens < 1.0:
                refused = Refusal(
                    RefusalReason.RATE_LIMITED,
                    f"{kind} limit per {scope} reached for {key}",
                    retry_after=buckets.retry_after(tokens),
                )
                refused_scope = scope
                break
            levels.append((buckets, key, tokens, stamp))
        # An attempt its own number's bucket refuses is not counted as the prefix's traffic: one SIM sending
        # ~1000 MOs in a window (costing at most its burst in SMS) would otherwise block its whole prefix for
        # everyone. Attempts the prefix or carrier bucket refuse still count: those buckets being empty is
        # what a pump spread over many numbers looks like, and a block then stops it before they refill.
        if kind == "reg" and refused_scope != "number":
            blocked = self._pump_count(prefix, now)
            if blocked is not None:
                return blocked
        if refused is not None:
            return refused
        for buckets, key, tokens, stamp in levels:
            buckets.take(key, tokens, stamp, now)
        return None

    def _blocked(self, prefix: str, now: float) -> Refusal | None:
        """The refusal of a REG-REQ from a prefix blocked at ``now``, else None (a block that ended is dropped)."""
        blocks = self._blocks
        until = blocks.get(prefix)
        if until is not None:
            if now < until:
                retry = min(MAX_RETRY_AFTER, until - now)
                return Refusal(RefusalReason.PREFIX_BLOCKED, f"prefix {prefix} pumped traffic", retry_after=retry)
            del blocks[prefix]
        return None

    def _pump_count(self, prefix: str, now: float) -> Refusal | None:
        """Count one REG-REQ attempt of ``prefix``; the refusal if that makes it a pump (and it is now blocked)."""
        limits = self._limits
        window = limits.pump_window
        index = math.floor(now / window)
        counters = self._counters
        counter = counters.get(prefix)
        if counter is None:
            counter = counters[prefix] = _PumpCounter(index, self._pump_floor * window)
        elif index > counter.index:
            # check() never lets time run backwards, so never an earlier window.
            self._roll(counter, index)
        counter.current += 1
        counters.move_to_end(prefix)
        self._sweep_counters(prefix, now)
        # The sliding window [now - window, now] covers this much of the previous fixed window.
        overlap = 1.0 - (now - index * window) / window
        estimate = counter.previous * min(1.0, max(0.0, overlap)) + counter.current
        if estimate > counter.limit:
            # The pump's counts are dropped, not learnt: the baseline stays what it was before the pump.
            counter.previous = counter.current = 0
            self._block(prefix, now)
            return Refusal(
                RefusalReason.PREFIX_BLOCKED,
                f"prefix {prefix}: {estimate:.0f} REG-REQs in {window:g}s, "
                f"over {counter.limit:.0f} (baseline {counter.baseline:.3g}/s)",
                retry_after=min(MAX_RETRY_AFTER, limits.pump_block),
            )
        return None

    def _roll(self, counter: _PumpCounter, index: int) -> None:
        """Advance ``counter`` to window ``index`` (later than its own): fold in the completed windows."""
        limits = self._limits
        window = limits.pump_window
        decay = self._pump_decay
        # The window that just ended is one sample; each empty one after it a sample of zero.
        baseline = decay * counter.baseline + (1.0 - decay) * counter.current / window
        skipped = index - counter.index - 1
        if skipped:
            baseline *= decay**skipped
            counter.previous = 0
        else:
            counter.previous = counter.current
        counter.current = 0
        counter.index = index
        counter.baseline = baseline
        counter.limit = (limits.pump_factor * baseline + self._pump_floor) * window

    def _forgettable(self, counter: _PumpCounter, now: float) -> bool:
        """Whether dropping ``counter`` at ``now`` would change (next to) nothing; rolls it forward to find out."""
        index = math.floor(now / self._limits.pump_window)
        # Both fixed windows still weigh in the estimate until two windows on.
        if index < counter.index + 2:
            return False
        # Rolling now or at the prefix's next request gives the same baseline (see _pump_decay), so this is exact.
        self._roll(counter, index)
        return self._limits.pump_factor * counter.baseline < _NEGLIGIBLE * self._pump_floor

    def _block(self, prefix: str, now: float) -> None:
        blocks = self._blocks
        blocks[prefix] = now + self._limits.pump_block
        blocks.move_to_end(prefix)
        self.blocks_started += 1
        self._expire_blocks(now)
        # Every block needed at least pump_floor x pump_window attempts from its prefix, so this cap is reached
        # only by an absurd configuration; dropping the block that ends first is then the least harmful choice.
        while len(blocks) > self._limits.max_entries:
            blocks.popitem(last=False)

    def _sweep_counters(self, just_written: str, now: float) -> None:
        counters = self._counters
        if len(counters) > self._limits.max_entries:
            _, counter = counters.popitem(last=False)
            if not self._forgettable(counter, now):
                self.lossy_counter_evictions += 1
        window = self._limits.pump_window
        index = math.floor(now / window)
        for _ in range(_SWEEP):
            oldest = next(iter(counters))
            counter = counters[oldest]
            if oldest == just_written or index < counter.index + 2:
                # The table is in order of counter.index (a write or a roll moves an entry to the end with the
                # current window), so nothing behind an entry that is still in its two windows can go either.
                break
            if self._forgettable(counter, now):
                del counters[oldest]
            else:
                # Rolled forward and kept (a quiet prefix whose baseline still counts). Left at the head it stopped
                # the sweep for hours while it decayed, and one-shot prefixes piled up behind it toward the cap;
                # it now has the current window, so its place is at the end. Each step still examines one entry.
                counters.move_to_end(oldest)

    def _expire_blocks(self, now: float) -> None:
        blocks = self._blocks
        while blocks:
            prefix, until = next(iter(blocks.items()))
            if until > now:
                break
            del blocks[prefix]

    # ----------------------------------------------------------------------------------------------- for metrics

    def blocked_prefixes(self, now: float) -> dict[str, float]:
        """Prefixes blocked at ``now`` and when each block ends (same clock as ``now``)."""
        self._expire_blocks(now)
        return dict(self._blocks)

    def is_blocked(self, prefix: str, now: float) -> bool:
        """Whether REG-REQs from ``prefix`` are refused at ``now``."""
        until = self._blocks.get(prefix)
        return until is not None and now < until

    def entry_counts(self) -> dict[str, int]:
        """Live entries per table (``reg_number``, ``auth_prefix``, ..., ``pump_counters``, ``blocks``)."""
        counts = {f"{kind}_{scope}": len(b.entries) for (kind, scope), b in self._buckets.items()}
        counts["pump_counters"] = len(self._counters)
        counts["blocks"] = len(self._blocks)
        return counts

    @property
    def lossy_bucket_evictions(self) -> int:
        """Buckets dropped at the cap before they had refilled (each reset one key's limit early)."""
        return sum(b.lossy_evictions for b in self._buckets.values())

    @property
    def lossy_evictions(self) -> int:
        """Lossy evictions of every table: buckets (:attr:`lossy_bucket_evictions`) and pump counters."""
        return self.lossy_bucket_evictions + self.lossy_counter_evictions
