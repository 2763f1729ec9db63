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
is a REG-REQ problem — every accepted REG-REQ costs an MT SMS. So REG-REQ attempts, refused or not, are counted
per prefix over a sliding window (the two-window estimate: the previous fixed window's count weighted by how much
of it still overlaps, plus the current one's). When the estimate exceeds :attr:`VelocityLimits.pump_threshold`,
the prefix is blocked for :attr:`VelocityLimits.pump_block` seconds: every REG-REQ from it is refused with
PREFIX_BLOCKED, and counting starts again from zero when the block ends. Authenticate is not blocked: it costs no
SMS, and the phones that got a proof just before the block should still be able to use it (the per-prefix
bucket still limits them).

Memory stays bounded by construction:

* A bucket that has refilled to its burst is indistinguishable from a bucket never created, so it can be dropped
  without changing any decision. The tables are kept in least-recently-used order and every write looks at the
  two oldest entries and drops them if they are full — idle buckets disappear as traffic moves on.
* Each table also has a hard cap (:attr:`VelocityLimits.max_entries`). Past it, the least recently used entry is
  dropped even if it is not full (a "lossy" eviction, counted in :attr:`VelocityLimiter.lossy_evictions`): under
  a flood of distinct numbers it resets the oldest numbers' buckets rather than grow without end, and the prefix
  and carrier buckets keep limiting the flood meanwhile.

Pure: ``now`` is an argument (seconds, any origin); a clock that steps backwards is taken as standing still until
it passes the latest time seen, so it never mints tokens nor shortens a block.
Not thread-safe: one limiter belongs to one event loop.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Final, Literal

from identity_core.refusals import Refusal, RefusalReason

__all__ = ["ALL_SCOPES", "Kind", "Rate", "Scope", "VelocityLimiter", "VelocityLimits"]

Kind = Literal["reg", "auth"]
Scope = Literal["number", "prefix", "carrier"]
#: Every scope a request is limited in, the default of :meth:`VelocityLimiter.check`.
ALL_SCOPES: Final[frozenset[Scope]] = frozenset({"number", "prefix", "carrier"})

#: Oldest entries examined for lossless eviction on each write: enough to keep up with one new entry per write
#: (amortised), small enough to cost nothing measurable.
_SWEEP: Final = 2


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
    #: Length of the sliding window, in seconds, over which REG-REQ attempts per prefix are counted.
    pump_window: float = 10.0
    #: Attempts per prefix within one window above which the prefix is blocked.
    pump_threshold: int = 20_000
    #: Seconds a pumping prefix stays blocked.
    pump_block: float = 300.0
    #: Hard cap on entries per table (buckets of one kind and scope, pump counters, blocks).
    max_entries: int = 1_000_000

    def __post_init__(self) -> None:
        if not 1 <= self.prefix_digits <= 15:
            raise ValueError(f"prefix_digits must be 1..15 (E.164 has at most 15 digits), got {self.prefix_digits}")
        if not (math.isfinite(self.pump_window) and self.pump_window > 0):
            raise ValueError(f"pump_window must be a finite number of seconds > 0, got {self.pump_window!r}")
        if self.pump_threshold < 1:
            raise ValueError(f"pump_threshold must be >= 1, got {self.pump_threshold}")
        if not (math.isfinite(self.pump_block) and self.pump_block >= 0):
            raise ValueError(f"pump_block must be a finite number of seconds >= 0, got {self.pump_block!r}")
        if self.max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {self.max_entries}")

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
        return (1.0 - tokens) / self.rate if self.rate > 0 else None


class VelocityLimiter:
    """Decides whether a REG-REQ or an authenticate call may proceed now. See the module docstring."""

    __slots__ = (
        "_blocks",
        "_buckets",
        "_counters",
        "_latest",
        "_limits",
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
        # prefix -> (index of the current fixed window, count in the previous window, count in the current one).
        # Window indices rather than start times: integers compare exactly, float starts need not.
        self._counters: OrderedDict[str, tuple[int, int, int]] = OrderedDict()
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
            refusal = self._pump_check(prefix, now)
            if refusal is not None:
                return refusal

        # Look at all three buckets before touching any, so a refusal consumes nothing.
        levels: list[tuple[_Buckets, str, float, float]] = []
        pairs: tuple[tuple[Scope, str], ...] = (("number", e164), ("prefix", prefix), ("carrier", carrier))
        for scope, key in pairs:
            buckets = self._buckets.get((kind, scope))
            if buckets is None or scope not in scopes:
                continue
            tokens, stamp = buckets.level(key, now)
            if tokens < 1.0:
                return Refusal(
                    RefusalReason.RATE_LIMITED,
                    f"{kind} limit per {scope} reached for {key}",
                    retry_after=buckets.retry_after(tokens),
                )
            levels.append((buckets, key, tokens, stamp))
        for buckets, key, tokens, stamp in levels:
            buckets.take(key, tokens, stamp, now)
        return None

    def _pump_check(self, prefix: str, now: float) -> Refusal | None:
        limits = self._limits
        blocks = self._blocks
        until = blocks.get(prefix)
        if until is not None:
            if now < until:
                return Refusal(RefusalReason.PREFIX_BLOCKED, f"prefix {prefix} pumped traffic", retry_after=until - now)
            del blocks[prefix]

        window = limits.pump_window
        index = math.floor(now / window)
        counters = self._counters
        entry = counters.get(prefix)
        if entry is None:
            previous, current = 0, 0
        else:
            old_index, old_previous, old_current = entry
            if index <= old_index:
                # Same window (check() never lets time run backwards, so never an earlier one).
                index, previous, current = old_index, old_previous, old_current
            elif index == old_index + 1:
                previous, current = old_current, 0
            else:
                previous, current = 0, 0
        current += 1
        # The sliding window [now - window, now] covers this much of the previous fixed window.
        overlap = 1.0 - (now - index * window) / window
        estimate = previous * min(1.0, max(0.0, overlap)) + current
        if estimate > limits.pump_threshold:
            counters.pop(prefix, None)
            self._block(prefix, now)
            return Refusal(
                RefusalReason.PREFIX_BLOCKED,
                f"prefix {prefix}: {estimate:.0f} REG-REQs in {window:g}s",
                retry_after=limits.pump_block,
            )
        counters[prefix] = (index, previous, current)
        counters.move_to_end(prefix)
        self._sweep_counters(prefix, now)
        return None

    def _block(self, prefix: str, now: float) -> None:
        blocks = self._blocks
        blocks[prefix] = now + self._limits.pump_block
        blocks.move_to_end(prefix)
        self.blocks_started += 1
        self._expire_blocks(now)
        # Every block needed pump_threshold attempts, so this cap is reached only by an absurd configuration;
        # dropping the block that ends first is then the least harmful choice.
        while len(blocks) > self._limits.max_entries:
            blocks.popitem(last=False)

    def _sweep_counters(self, just_written: str, now: float) -> None:
        counters = self._counters
        window = self._limits.pump_window
        if len(counters) > self._limits.max_entries:
            _, (index, _, _) = counters.popitem(last=False)
            if now < (index + 2) * window:
                self.lossy_counter_evictions += 1
        for _ in range(_SWEEP):
            oldest = next(iter(counters))
            # Two windows on, both counts have aged out of the estimate: the entry says nothing any more.
            if oldest == just_written or now < (counters[oldest][0] + 2) * window:
                break
            del counters[oldest]

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
    def lossy_evictions(self) -> int:
        """Buckets dropped at the cap before they had refilled (each reset one key's limit early)."""
        return sum(b.lossy_evictions for b in self._buckets.values()) + self.lossy_counter_evictions
