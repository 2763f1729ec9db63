"""The conformance oracle: judges the ESME bound to an emulated SMSC, one session at a time.

Each check collects evidence as the session runs and ends as a verdict: ``pass`` (exercised, never violated),
``fail`` (violated; the first violation is the reason), or ``inconc`` (never exercised, so nothing can be said).
The checks are the rules an SMSC operator holds a client to:

- ``response_echo``: a response answers an outstanding request, with the request's command and sequence number
  (SMPP 3.4 3.2: "the sequence_number of a response ... must match the original request"). A generic_nack is
  no answer to a request of ours: we send only well-formed PDUs (3.4 4.3 keeps generic_nack for those that are
  not).
- ``response_time``: responses to our deliver_sm/data_sm/enquire_link arrive within the response timer. A
  request still unanswered when the session ends (the peer dropped or unbound the connection first) will never
  be answered: a violation too.
- ``state``: nothing the peer sends is illegal in the session state (3.4 2.3; answered ESME_RINVBNDSTS). A
  request that crosses our own unbind on the wire -- sent while the peer was still bound, before it could read
  the unbind -- is answered ESME_RINVBNDSTS all the same but is not the peer's fault: it holds the check.
- ``wellformed``: every PDU decodes (no generic_nack-worthy garbage), with a command the negotiated interface
  version has (3.4 4.3: an unknown command_id is answered generic_nack ESME_RINVCMDID), and every request's
  sequence_number lies in 0x00000001..0x7FFFFFFF (3.4 3.2; such a request is still answered, echoing it).
- ``window``: the peer never has more requests outstanding with us than the agreed window.
- ``enquire_link``: every enquire_link we send is answered, with an enquire_link_resp whose command_status is
  ESME_ROK (3.4 4.11.2).
- ``payload_exclusive``: short_message and message_payload are never both set (3.4 5.3.2.32).
- ``udhi``: the UDHI bit set means a well-formed UDH starts the payload; a concatenation UDH without it fails.
- ``concatenation``: text over one segment travels concatenated (UDH, SAR or message_payload), not oversized;
  each segment in short_message, a concatenated message's part included, fits one SMS beside its UDH (only
  message_payload, which the SMSC splits, has no segment limit); and a part's tie is one the receiver uses (a
  concatenation IE or SAR TLVs with 0 parts, or a part numbered 0 or past the total, tie nothing).
- ``data_coding``: the octets are valid in the declared data_coding.
- ``throttle_backoff``: after ESME_RTHROTTLED the peer waits before submitting again (what it may have sent
  before it could read the throttle, at most the agreed window less the throttled request, is not held against it).
- ``unbind``: the session ends with a completed unbind handshake, not a dropped connection. When the SMSC closes
  the connection at shutdown, its unbind unanswered after a grace shorter than response_timeout, the peer was not
  given its full response time: ``inconc``, saying so (and what it left unanswered is not judged either).

Cost. The oracle judges every PDU of every session, so the ordinary case costs a counter: a request that breaks
no rule, a plain message (one segment of GSM or binary text, no UDH, no message_payload) and a matched response
each add one to a tally, folded into the checks' ``exercised`` counts whenever the results are read. Anything
else goes the long way, check by check; either way the verdicts are the same.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from carrier_sim.smpp import gsm7
from carrier_sim.smpp.coding import DataCoding, UnsupportedTextCoding, decode_text, is_binary_coding, text_alphabet
from carrier_sim.smpp.constants import CommandId, CommandStatus
from carrier_sim.smpp.errors import InvalidCommandId, ResponseBodyMissing, SmppError
from carrier_sim.smpp.events import CloseReason
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smpp.tlv import tag_of
from carrier_sim.smpp.udh import Iei, Udh, split_udh

__all__ = ["CHECKS", "CheckResult", "Oracle", "Verdict"]

_UDHI = 0x40
_SUBMITS = frozenset({CommandId.submit_sm, CommandId.submit_multi, CommandId.data_sm})
_MESSAGE_PAYLOAD = tag_of("message_payload")
_SAR_MSG_REF_NUM = tag_of("sar_msg_ref_num")
_SAR_TOTAL_SEGMENTS = tag_of("sar_total_segments")
_SAR_SEGMENT_SEQNUM = tag_of("sar_segment_seqnum")
_CONCATENATION_IEIS = frozenset({Iei.CONCATENATED_8BIT, Iei.CONCATENATED_16BIT})
#: is_binary_coding for every data_coding octet, looked up once per message instead of decided.
_BINARY_CODINGS = frozenset(dc for dc in range(256) if is_binary_coding(dc))
#: The largest sequence_number a request may carry (SMPP 3.4 3.2: "0x00000001 to 0x7FFFFFFF").
_SEQUENCE_MAX = 0x7FFFFFFF
#: Requests a reason names as examples, at most.
_EXAMPLES = 3


class Verdict(enum.Enum):
    """How a check ended."""

    PASS = "pass"
    FAIL = "fail"
    INCONC = "inconc"


CHECKS: tuple[str, ...] = (
    "response_echo",
    "response_time",
    "state",
    "wellformed",
    "window",
    "enquire_link",
    "payload_exclusive",
    "udhi",
    "concatenation",
    "data_coding",
    "throttle_backoff",
    "unbind",
)


@dataclass(slots=True)
class CheckResult:
    """Evidence for one check: how often it was exercised, how often violated, the first violation."""

    name: str
    exercised: int = 0
    violations: int = 0
    first_violation: str | None = None
    #: Why a check that was never exercised could not be judged, when there is more to say than that.
    not_judged: str | None = None

    @property
    def verdict(self) -> Verdict:
        """pass / fail / inconc, as defined in the module docstring."""
        if self.violations:
            return Verdict.FAIL
        return Verdict.PASS if self.exercised else Verdict.INCONC

    @property
    def reason(self) -> str:
        """One line saying why the verdict is what it is."""
        if self.violations:
            return f"{self.violations} violation(s) in {self.exercised}; first: {self.first_violation}"
        if self.exercised:
            return f"held {self.exercised} time(s)"
        return self.not_judged or "never exercised"

    def to_json(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {"check": self.name, "verdict": self.verdict.value, "reason": self.reason,
                "exercised": self.exercised, "violations": self.violations}


#: What one tally stands for: the checks each ordinary event exercises (and holds).
_REQUEST_CHECKS = ("wellformed", "state", "window")
_MESSAGE_CHECKS = ("payload_exclusive", "udhi", "concatenation", "data_coding")
_RESPONSE_CHECKS = ("response_echo", "response_time")


@dataclass(slots=True)
class Oracle:
    """Judges one session. Feed it what the peer sent and what we answered; read :meth:`results`."""

    window: int = 10
    response_timeout: float = 30.0
    backoff: float = 0.05
    _results: dict[str, CheckResult] = field(default_factory=dict)
    _throttled_at: float | None = None
    _since_throttle: int = 0
    _links_answered: int = 0
    _unbound_cleanly: bool = False
    #: Once we sent unbind: the commands the peer could legally send in the state we unbound it from.
    _crossing: frozenset[CommandId] = frozenset()
    # Tallies of ordinary events not yet folded into _results (see the module docstring).
    _requests: int = 0
    _messages: int = 0
    _responses: int = 0
    #: The peer's windowed requests awaiting our answer, oldest first (its session's ``owed_windowed``): which of
    #: requests that arrived together went over the window. Without it, the request being judged is taken to be
    #: the one that arrived last.
    owed: Callable[[], Sequence[tuple[int, CommandId]]] | None = field(default=None, repr=False, compare=False)
    #: The last TLV tuple found without message_payload and SAR (see _plain).
    _plain_tlvs: tuple[tuple[int, object], ...] = field(default=(), repr=False, compare=False)
    #: Requests known to have gone over the window but not yet judged: (sequence_number, command) -> how many
    #: requests the peer had outstanding when it arrived.
    _overran: dict[tuple[int, CommandId], int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._results = {name: CheckResult(name) for name in CHECKS}

    @property
    def results_by_name(self) -> dict[str, CheckResult]:
        """Every check by name, up to date."""
        self._fold()
        return self._results

    def _fold(self) -> None:
        results = self._results
        for count, names in ((self._requests, _REQUEST_CHECKS), (self._messages, _MESSAGE_CHECKS),
                             (self._responses, _RESPONSE_CHECKS)):
            if count:
                for name in names:
                    results[name].exercised += count
        self._requests = self._messages = self._responses = 0

    def ok(self, name: str) -> None:
        """Record that a check held once."""
        self._results[name].exercised += 1

    def violate(self, name: str, reason: str) -> None:
        """Record a violation of a check."""
        result = self._results[name]
        result.exercised += 1
        result.violations += 1
        if result.first_violation is None:
            result.first_violation = reason

    @property
    def enquire_links_answered(self) -> int:
        """How many of our enquire_link the peer answered in time, well or not: a generic_nack fails the check but
        shows the link alive (those that timed out are the check's violations)."""
        return self._links_answered

    def results(self) -> list[CheckResult]:
        """Every check, in the documented order."""
        self._fold()
        return [self._results[name] for name in CHECKS]

    # -- what the peer sent -------------------------------------------------------------------------------

    def request_received(self, pdu: Pdu, now: float, outstanding: int) -> None:
        """A request from the peer, legal in the state; ``outstanding`` counts the peer's unanswered requests
        including this one (and any that arrived with it, not yet handled)."""
        if (outstanding > self.window or self._overran) and self._went_over(pdu, outstanding):
            pass  # judged: window violated, wellformed and state held
        elif not 0 < pdu.sequence_number <= _SEQUENCE_MAX:
            # Answered all the same (the response echoes it), but 0 and the top half are outside the range 3.4 3.2
            # gives requests: a peer that wraps its counter at 2^32 instead of 2^31 sends them.
            results = self._results
            results["state"].exercised += 1
            results["window"].exercised += 1
            self.violate("wellformed", f"{pdu.command_id.name} sequence_number {pdu.sequence_number:#010x} is "
                                       "outside 0x00000001..0x7fffffff (SMPP 3.4 3.2)")
        else:
            self._requests += 1  # wellformed, state and window held
        if pdu.command_id in _SUBMITS:
            self._judge_message(pdu)
            if self._throttled_at is not None:
                self._judge_backoff(now)

    def judges_window_alone(self, outstanding: int) -> bool:
        """Whether :meth:`request_received` judges the window of requests that arrive with at most ``outstanding``
        unanswered without asking ``owed``: none of them goes over, and none sent earlier is known to have."""
        return outstanding <= self.window and not self._overran

    def _went_over(self, pdu: Pdu, outstanding: int) -> bool:
        """Judge the window for ``pdu`` if it went over; True if it did. Off the hot path: only while the peer has
        more requests outstanding than the window, or some it sent are known to have gone over."""
        overran = self._overran
        if outstanding > self.window:
            key = (pdu.sequence_number, pdu.command_id)
            if key in overran:
                # Found over the window with the rest of its read when the first of them was judged: the owed list
                # need not be walked again (it was, per request: quadratic in a flood, 0.5 ms a request at 8,000).
                pass
            elif self.owed is None:
                overran.setdefault(key, outstanding)
            else:
                # Requests decoded from one read are all owed before the first of them is handled, so the count
                # seen now is the last one's: the one that went over is the (window + 1)-th in arrival order, and
                # each after it, not the request handled first. Those before this one were judged already.
                owed = self.owed()
                try:
                    start = owed.index(key)
                except ValueError:
                    start = len(owed)
                for position in range(max(start, self.window), len(owed)):
                    overran.setdefault(owed[position], position + 1)
        count = overran.pop((pdu.sequence_number, pdu.command_id), None) if overran else None
        if count is None:
            return False
        results = self._results
        results["wellformed"].exercised += 1
        results["state"].exercised += 1
        self.violate("window", f"{count} requests outstanding, window {self.window} "
                               f"(at {pdu.command_id.name} seq {pdu.sequence_number})")
        return True

    def unbinding(self, legal: frozenset[CommandId]) -> None:
        """We sent unbind; ``legal``: the commands the peer could send in the bound state it was in until then."""
        self._crossing = legal

    def rejected(self, pdu: Pdu | None, error: SmppError) -> None:
        """Something the session refused: illegal in the state, undecodable, of a command the interface version
        lacks, or an unexpected response."""
        what = pdu.command_id.name if pdu is not None else "undecodable PDU"
        if error.command_status in (CommandStatus.ESME_RINVBNDSTS, CommandStatus.ESME_RALYBND):
            if pdu is not None and pdu.command_id in self._crossing:
                # 3.4 2.3 judges a PDU by the state its sender was in: until it reads our unbind, the peer is
                # bound, and what it sent meanwhile was legal when sent (it was only refused on arrival).
                self._results["state"].exercised += 1
            else:
                self.violate("state", f"{what} is illegal in the session state")
        elif pdu is None or not pdu.command_id.is_response or isinstance(error, InvalidCommandId | ResponseBodyMissing):
            # (A response without its body still answered its request; it is judged here, as malformed.)
            # A command_id the negotiated version does not have, or a request the session refused for its
            # content (TLVs on an SMPP 3.3 bind, answered ESME_RINVCMDLEN), is malformed input (3.4 4.3), not a
            # response that echoes the wrong request: response_echo is about responses only.
            self.violate("wellformed", f"{what}: {error}" if pdu is not None else str(error))
        else:
            # A response that answers none of our requests in flight: reported, never answered, so no status.
            self.violate("response_echo", f"{what} seq {pdu.sequence_number}: {error.message}")

    def response_matched(self, request: Pdu, response: Pdu, round_trip: float) -> None:
        """The peer answered one of our requests (its response, or a generic_nack with its sequence_number)."""
        command = request.command_id
        if response.command_id is command.response and round_trip <= self.response_timeout:
            self._responses += 1  # response_echo and response_time held
            if command is CommandId.enquire_link:
                self._links_answered += 1
                self._judge_link_status(request, response)
            return
        results = self._results
        nacked = response.command_id is CommandId.generic_nack
        if nacked:
            self._nacked(request, response)
        elif response.command_id is not command.response:
            self.violate("response_echo", f"{response.command_id.name} answered {command.name}")
        else:
            results["response_echo"].exercised += 1
        if round_trip > self.response_timeout:
            self.violate("response_time", f"{command.name} answered after {round_trip:.3f} s")
        else:
            results["response_time"].exercised += 1
        if command is CommandId.enquire_link:
            self._links_answered += 1  # a nack too: the peer is there, only it does not do enquire_link
            if nacked:
                self.violate("enquire_link", f"enquire_link seq {request.sequence_number} answered by a generic_nack "
                                             f"{_status_name(response.command_status)}, not an enquire_link_resp")
            else:
                self._judge_link_status(request, response)

    def _judge_link_status(self, request: Pdu, response: Pdu) -> None:
        # SMPP 3.4 4.11.2 (5.0 4.1.2.2) gives enquire_link_resp one command_status, ESME_ROK: the check is a sign
        # of life, and a peer that answers it with an error has either misread it or reports a failure it has no
        # way to name here. Alive all the same (counted by the caller), but the answer is wrong.
        if response.command_status != CommandStatus.ESME_ROK:
            self.violate("enquire_link", f"enquire_link seq {request.sequence_number} answered by an "
                                         f"enquire_link_resp with {_status_name(response.command_status)}: SMPP "
                                         "3.4 4.11.2 gives it ESME_ROK")
        else:
            self._results["enquire_link"].exercised += 1

    def late_response(self, request: Pdu, response: Pdu) -> None:
        """A response that came after its request's timer fired (judged then, by :meth:`response_timed_out`): a
        generic_nack is still an answer our well-formed request did not deserve."""
        if response.command_id is CommandId.generic_nack:
            self._nacked(request, response)

    def _nacked(self, request: Pdu, response: Pdu) -> None:
        # SMPP 3.4 4.3: generic_nack is for a PDU whose header cannot be read or whose command_id is unknown (the
        # status says which). Every PDU the SMSC sends is encoded by the codec for the version bound, so a
        # generic_nack to one is the peer failing to read good SMPP.
        status = response.command_status
        self.violate("response_echo", f"generic_nack {_status_name(status)} answered our {request.command_id.name} "
                                      f"seq {request.sequence_number}, which was well-formed (SMPP 3.4 4.3: a "
                                      "generic_nack is for a PDU that cannot be decoded)")
        if status == CommandStatus.ESME_ROK:
            self.violate("wellformed", f"generic_nack seq {response.sequence_number} has command_status 0: SMPP 3.4 "
                                       "4.3 gives a generic_nack the error it reports")

    def response_timed_out(self, request: Pdu) -> None:
        """One of our requests went unanswered."""
        what = f"{request.command_id.name} seq {request.sequence_number} not answered within the response timeout"
        self.violate("response_time", what)
        if request.command_id is CommandId.enquire_link:
            self.violate("enquire_link", what)

    def answered(self, response: Pdu, now: float) -> None:
        """We answered the peer: a throttle starts an episode in which its submits are judged."""
        if response.command_status == CommandStatus.ESME_RTHROTTLED and self._throttled_at is None:
            self._throttled_at = now
            self._since_throttle = 0

    def _judge_backoff(self, now: float) -> None:
        # A pipelining peer has requests on the wire that it sent before it read ESME_RTHROTTLED. Which ones, the
        # SMSC cannot see: a request that arrives after the throttle was written may still have left before the
        # peer read it (it was in the network, or the peer writes a window-full before reading anything), and
        # whether two requests came in one TCP read or two says nothing about what the peer had read. What bounds
        # it is the agreed window: until it reads the throttle, the throttled request holds one of its places, and
        # any response it could read to free another was written before the throttle (TCP keeps the order), so
        # it answers a request that was already in flight, holding a place, when the throttle was written. So at
        # most window - 1 submits follow the throttle unread; more within the back-off time were sent after the
        # throttle was known. The same bytes get the same verdict however they were cut.
        assert self._throttled_at is not None
        gap = now - self._throttled_at
        if gap >= self.backoff:
            self._throttled_at = None
            self.ok("throttle_backoff")
            return
        self._since_throttle += 1
        allowance = self.window - 1
        if self._since_throttle > allowance:
            self._throttled_at = None
            self.violate(
                "throttle_backoff",
                f"{self._since_throttle} submit(s) within {gap * 1000:.1f} ms of ESME_RTHROTTLED, more than the "
                f"{allowance} a window of {self.window} lets a peer send before it reads the throttle",
            )

    def unbound(self, clean: bool, unanswered: Sequence[Pdu] = (), *, closed: CloseReason | None = None,
                shutdown_grace: float | None = None) -> None:
        """The session ended: by a completed unbind handshake (``clean``) or not. ``unanswered``: our requests the
        peer had not answered when it ended (those whose response timer fired are already judged, by
        :meth:`response_timed_out`). ``closed``: why the session closed. ``shutdown_grace``: the SMSC itself
        closed the connection as it shut down, that many seconds after it sent its unbind."""
        outstanding = len(unanswered)
        rt = self.response_timeout
        if shutdown_grace is not None and not (clean and outstanding == 0):
            ours = any(r.command_id is CommandId.unbind for r in unanswered)
            what = (f"our unbind not answered within the {shutdown_grace:g} s shutdown grace" if ours or not outstanding
                    else f"{outstanding} of our requests not answered within the {shutdown_grace:g} s shutdown grace")
            if shutdown_grace < rt:
                # SMPP gives the peer the response timer to answer (3.4 7.2), and the SMSC did not wait that long:
                # a late answer and none at all look the same. Neither the unbind nor what was left is judged.
                self._results["unbind"].not_judged = (f"not judged: {what}, shorter than response_timeout ({rt:g} s), "
                                                      "when the SMSC closed the connection")
                return
            self.violate("unbind", f"{what} (response_timeout {rt:g} s); the SMSC closed the connection")
        elif clean and outstanding == 0:
            self.ok("unbind")
        elif clean:
            self.violate("unbind", f"unbind with {outstanding} of our requests unanswered")
        elif closed is CloseReason.RESPONSE_TIMEOUT:
            self.violate("unbind", f"our unbind not answered within response_timeout ({rt:g} s); the SMSC closed "
                                   "the connection")
        elif closed is CloseReason.FRAMING_ERROR:
            self.violate("unbind", "no unbind: the SMSC closed the connection on a command_length it could not "
                                   "trust (SMPP 3.4 4.3)")
        else:
            self.violate("unbind", "connection dropped without unbind")
        # An unbind of ours the peer hung up on is the unbind check's failure (above), not a second one here.
        pending = [r for r in unanswered if r.command_id is not CommandId.unbind]
        if pending:
            self.never_answered(pending)

    def never_answered(self, requests: Sequence[Pdu]) -> None:
        """Our requests the session ended on: none will ever be answered, so each is a response_time violation
        (an ESME that binds and answers nothing fails the check, not ``inconc``), and an enquire_link among them
        an enquire_link violation, as when their timer fires."""
        result = self._results["response_time"]
        count = len(requests)
        result.exercised += count
        result.violations += count
        if result.first_violation is None:
            shown = ", ".join(f"{r.command_id.name} seq {r.sequence_number}" for r in requests[:_EXAMPLES])
            more = ", ..." if count > _EXAMPLES else ""
            result.first_violation = (f"{count} request(s) never answered before the session ended "
                                      f"({shown}{more})")
        for request in requests:
            if request.command_id is CommandId.enquire_link:
                self.violate("enquire_link", f"enquire_link seq {request.sequence_number} never answered "
                                             "before the session ended")

    # -- message content -----------------------------------------------------------------------------------

    def _judge_message(self, pdu: Pdu) -> None:
        params = pdu.params
        short = params.get("short_message", b"")
        assert isinstance(short, bytes)
        esm_class = params.get("esm_class", 0)
        data_coding = params.get("data_coding", 0)
        # The ordinary message, in one test: no message_payload or SAR TLV (nor any other), no UDHI, one segment,
        # and octets that are GSM 7-bit text as they stand (data_coding 0) -- or that need no decoding (binary).
        # Each of the four message checks then holds, as the long way below would find.
        tlvs = pdu.tlvs
        if (
            not tlvs or tlvs is self._plain_tlvs
            or (pdu.tlv(_MESSAGE_PAYLOAD) is None and pdu.tlv(_SAR_MSG_REF_NUM) is None and self._plain(tlvs))
        ) and type(esm_class) is int and not esm_class & _UDHI and not _starts_with_concatenation(short):
            if data_coding == 0 and type(data_coding) is int:
                if len(short) <= 160 and short.isascii() and gsm7.ESCAPE not in short:
                    self._messages += 1
                    return
            elif data_coding in _BINARY_CODINGS and len(short) <= 140:
                self._messages += 1
                return
        self._judge_message_each(pdu)

    def _plain(self, tlvs: tuple[tuple[int, object], ...]) -> bool:
        # The decoder hands out one tuple for equal TLV octets (codec._TLV_MEMO): a tuple found free of
        # message_payload and SAR once is so whenever it comes again (a tuple, immutable).
        self._plain_tlvs = tlvs
        return True

    def _judge_message_each(self, pdu: Pdu) -> None:
        """The long way: each message check in turn (the reference the tally in _judge_message must agree with)."""
        results = self._results
        params = pdu.params
        short = params.get("short_message", b"")
        assert isinstance(short, bytes)
        esm_class = params.get("esm_class", 0)
        data_coding = params.get("data_coding", 0)
        payload = pdu.tlv(_MESSAGE_PAYLOAD)
        if short and payload is not None:
            self.violate("payload_exclusive", f"{pdu.command_id.name} seq {pdu.sequence_number} sets both")
            return
        results["payload_exclusive"].exercised += 1
        data = payload if isinstance(payload, bytes) else short
        assert isinstance(esm_class, int)
        assert isinstance(data_coding, int)
        body = data
        header = 0
        if esm_class & _UDHI:
            try:
                udh, body = split_udh(data)
            except SmppError as err:
                self.violate("udhi", f"UDHI set but the UDH is malformed: {err.message}")
                return
            header = len(data) - len(body)
            results["udhi"].exercised += 1
            concatenated = bool(udh.find_all(Iei.CONCATENATED_8BIT) or udh.find_all(Iei.CONCATENATED_16BIT))
            ignored = _ignored_concatenation(udh) if concatenated else None
        else:
            # A concatenation IE at the front without UDHI is the classic "UDHI forgotten" bug.
            if _starts_with_concatenation(data):
                self.violate("udhi", "payload starts with a concatenation UDH but UDHI is not set")
                return
            results["udhi"].exercised += 1
            concatenated = False
            ignored = None
        sar = pdu.tlv(_SAR_MSG_REF_NUM) is not None
        # A tie the receiver ignores leaves a part that is never joined to the others: the concatenation fails
        # whatever the part's length.
        if ignored is None and sar:
            ignored = _ignored_sar(pdu)
        if ignored is not None:
            self.violate("concatenation", ignored)
        else:
            self._judge_length(body, data_coding, payload is not None, concatenated or sar, header)
        self._judge_coding(pdu, body, data_coding, concatenated or sar)

    def _judge_length(self, body: bytes, data_coding: int, payload: bool, segment: bool, header: int) -> None:
        """``payload``: the text came in message_payload; ``segment``: it is one part of a concatenated message
        (a concatenation IE, or SAR TLVs); ``header``: octets of the UDH (its length octet included) in front of
        ``body``, 0 without one."""
        results = self._results  # ok(), inline: this runs for every message
        if payload:
            # message_payload may hold up to 64 KiB (SMPP 3.4 5.3.2.32): the SMSC splits it, so no segment limit.
            results["concatenation"].exercised += 1
            return
        # One SMS carries 140 octets of user data, a UDH included (3GPP TS 23.040 9.2.3.16, 9.2.3.24). 7-bit text
        # is packed there as septets: 160 without a UDH; with one, the header rounded up to whole septets (the
        # fill bits) comes off, 160 - ceil(8 * header / 7): 153 behind the 6-octet concatenation UDH, 154 behind a
        # 5-octet one. SMPP carries septets unpacked, one per octet, so len(body) counts septets. A part of a
        # concatenated message is one SMS like any other: it gets no more room for being a part. A part tied by
        # SAR TLVs carries no concatenation UDH of its own, so it is held to the limit of what it carries, as
        # carrier_sim.smpp.segmentation fills SAR parts (the over-the-air header is the SMSC's to build).
        if data_coding in (0, 1) or (0 <= data_coding <= 0xFF and text_alphabet(data_coding) in _SEPTETS):
            # 0 and 1, and the GSM 7-bit values of the high groups SMPP passes through from TS 23.038 section 4
            # (0xC0-0xDF, and 0xF0-0xFF with bit 2 clear: a class 0 "flash" SMS of 160 septets is one SMS).
            full, unit = 160, "septets"
            limit = full - (8 * header + 6) // 7
        else:
            full, unit = 140, "octets"
            limit = full - header
        if len(body) > limit:
            behind = f"{full} less a {header}-octet UDH" if header else "one SMS"
            if 0 <= data_coding <= 0xFF and text_alphabet(data_coding) is DataCoding.UCS2:
                behind += f": {limit // 2} UCS-2 characters"
            what = "a concatenated message's segment" if segment else "one segment without concatenation"
            self.violate("concatenation", f"{len(body)} {unit} in {what}: {len(body) - limit} over the limit of "
                                          f"{limit} {unit} ({behind})")
        else:
            results["concatenation"].exercised += 1

    def _judge_coding(self, pdu: Pdu, body: bytes, data_coding: int, segment: bool = False) -> None:
        """``segment``: the body is one part of a concatenated message."""
        results = self._results  # ok(), inline: this runs for every message
        if not body or (data_coding in _BINARY_CODINGS if 0 <= data_coding <= 0xFF else is_binary_coding(data_coding)):
            results["data_coding"].exercised += 1
            return
        try:
            if data_coding == 0:
                if not (body.isascii() and gsm7.ESCAPE not in body):  # else valid septets, nothing to decode
                    gsm7.decode(body)
            else:
                decode_text(body, data_coding)
        except UnsupportedTextCoding as err:
            if 0 <= data_coding <= 0xFF and text_alphabet(data_coding) is not None:
                return  # SMPP 3.4 5.2.19 defines it (JIS, KS C 5601, pictograms...): valid, only not judged here
            self.violate("data_coding", f"data_coding 0x{data_coding:02x}: {err.message}")
        except SmppError as err:
            if segment and _ends_in_high_surrogate(body, data_coding):
                # A segment is decoded on its own by the handset, so a character split across two shows as two
                # replacement characters: the splitter must cut between characters, not inside a surrogate pair.
                self.violate("data_coding", f"data_coding 0x{data_coding:02x}: a UTF-16 surrogate pair is split "
                                            "across segments (this segment ends in its high half)")
            else:
                self.violate("data_coding", f"data_coding 0x{data_coding:02x}: {err.message}")
        else:
            results["data_coding"].exercised += 1

    def summary(self) -> Iterable[tuple[str, Verdict, str]]:
        """(check, verdict, reason) for printing."""
        return [(r.name, r.verdict, r.reason) for r in self.results()]


#: Alphabets whose text is counted in septets (one per octet, unpacked, in SMPP).
_SEPTETS = frozenset({DataCoding.SMSC_DEFAULT, DataCoding.IA5})


def _starts_with_concatenation(data: bytes) -> bool:
    """Whether ``data`` opens with a UDH holding only a concatenation IE: 8-bit reference (05 00 03 ...) or 16-bit
    reference (06 08 04 ...), 3GPP TS 23.040 9.2.3.24.1 and 9.2.3.24.8."""
    return (len(data) >= 6 and data[0] == 5 and data[1] == 0 and data[2] == 3) or (
        len(data) >= 7 and data[0] == 6 and data[1] == 8 and data[2] == 4)


def _status_name(status: int) -> str:
    """A command_status by its SMPP name (ESME_RINVCMDID), or in hex when it has none."""
    try:
        return CommandStatus(status).name
    except ValueError:
        return f"0x{status:08x}"


def _ignored_concatenation(udh: Udh) -> str | None:
    """Why a receiver ignores the concatenation IE of ``udh`` (which has one), None when it uses it.

    TS 23.040 9.2.3.24.1 (and .8): for the maximum number "If the value is zero then the receiving entity shall
    ignore the whole Information Element"; for the sequence number "If the value is zero or greater than the
    value in octet 2 then the receiving entity shall ignore the whole Information Element". Of repeated IEs the
    last counts (9.2.3.24), as :attr:`Udh.concatenation` reads it.
    """
    if udh.concatenation is not None:
        return None
    element = next(e for e in reversed(udh.elements) if e.iei in _CONCATENATION_IEIS)
    total, sequence = element.data[-2], element.data[-1]  # after the 8- or 16-bit reference
    return (f"concatenation IE 0x{element.iei:02x} numbers this part {sequence} of {total}: TS 23.040 9.2.3.24.1 "
            "has the receiver ignore it (0 parts, or a part numbered 0 or past the total), so the parts are never "
            "joined")


def _ignored_sar(pdu: Pdu) -> str | None:
    """Why the SAR TLVs of ``pdu`` (which has sar_msg_ref_num) tie nothing, None when they are whole and valid."""
    total, sequence = pdu.tlv(_SAR_TOTAL_SEGMENTS), pdu.tlv(_SAR_SEGMENT_SEQNUM)
    if not isinstance(total, int) or not isinstance(sequence, int):
        return ("sar_msg_ref_num without both sar_total_segments and sar_segment_seqnum (SMPP 3.4 5.3.2.22: the "
                "three tie a part together)")
    if total == 0 or not 1 <= sequence <= total:
        return (f"SAR TLVs number this part {sequence} of {total}: SMPP 3.4 5.3.2.23-24 allow 1..255 parts, "
                "numbered from 1 up to sar_total_segments")
    return None


def _ends_in_high_surrogate(body: bytes, data_coding: int) -> bool:
    """Whether UCS-2/UTF-16 ``body`` ends in the first half of a surrogate pair."""
    if not (0 <= data_coding <= 0xFF) or text_alphabet(data_coding) is not DataCoding.UCS2 or len(body) < 2:
        return False
    last = int.from_bytes(body[-2:] if len(body) % 2 == 0 else body[-3:-1], "big")
    return 0xD800 <= last <= 0xDBFF
