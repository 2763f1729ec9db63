"""The pure email-to-SMS translation: recipients and their SMTP replies, mail to SMS text, SMS to mail."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from email.message import EmailMessage, Message

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carrier_sim.mail.translate import (
    EmptyMessage,
    ForeignDomain,
    GatewayConfig,
    MailRefused,
    MalformedContent,
    MalformedRecipient,
    MessageTooLong,
    MoNotForMail,
    Overflow,
    Recipient,
    RetiredDomain,
    SmtpReply,
    UnconvertibleText,
    UnknownCharset,
    UnknownSubscriber,
    UnsupportedContent,
    delivery_failure_notice,
    is_postmaster,
    judge_recipient,
    mail_to_sms,
    parse_message,
    parse_recipient,
    reply_address,
    sender_address,
    sms_to_mail,
    trim_to_segments,
)
from carrier_sim.smpp import gsm7
from carrier_sim.smpp.coding import DataCoding, decode_text
from carrier_sim.smpp.errors import TextCodingError
from carrier_sim.smpp.segmentation import Segment, SegmentationMode
from carrier_sim.smpp.udh import split_user_data

CONFIG = GatewayConfig(
    domains=("sms.carrier-a.example", "txt.carrier-a.example"),
    retired_domains=("pager.carrier-a.example",),
    short_code="6245",
    hostname="mail.carrier-a.example",
    # Most tests here are about subject and body; the sender part has its own tests, with SENDER_SHOWN.
    sender_separator=None,
)
#: The default gateway: the SMS text starts with "<sender> / ".
SENDER_SHOWN = GatewayConfig(domains=("sms.carrier-a.example",), short_code="6245")


def text_of(segments: list[Segment]) -> str:
    """The text the handset shows once it has put the segments together."""
    parts = []
    for segment in segments:
        _, data = split_user_data(segment.short_message, 0x40 if segment.esm_class_udhi else 0)
        parts.append(decode_text(data, segment.data_coding))
    return "".join(parts)


def mail(raw: str) -> EmailMessage:
    return parse_message(raw.replace("\n", "\r\n").encode())


# -- recipients ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "msisdn"),
    [
        ("447700900123@sms.carrier-a.example", "447700900123"),
        ("+447700900123@sms.carrier-a.example", "447700900123"),
        ("447700900123@SMS.Carrier-A.example", "447700900123"),
        ("447700900123@txt.carrier-a.example.", "447700900123"),
    ],
)
def test_recipient_is_read_as_international_digits(address: str, msisdn: str) -> None:
    assert parse_recipient(address, CONFIG).msisdn == msisdn


@pytest.mark.parametrize(
    ("address", "refusal", "reply"),
    [
        # Well-formed addresses without a number: no such mailbox, not a syntax error.
        ("alice@sms.carrier-a.example", UnknownSubscriber, "550 5.1.1"),
        ("07700900123@sms.carrier-a.example", UnknownSubscriber, "550 5.1.1"),
        ("4477009001234567@sms.carrier-a.example", UnknownSubscriber, "550 5.1.1"),
        ("++447700900123@sms.carrier-a.example", UnknownSubscriber, "550 5.1.1"),
        ("@sms.carrier-a.example", MalformedRecipient, "501 5.1.3"),
        ("447700900123", MalformedRecipient, "501 5.1.3"),
        ("447700900123@pager.carrier-a.example", RetiredDomain, "550 5.1.2"),
        ("447700900123@sms.carrier-b.example", ForeignDomain, "550 5.7.1"),
    ],
)
def test_bad_recipients_get_their_replies(address: str, refusal: type[Exception], reply: str) -> None:
    with pytest.raises(refusal) as caught:
        parse_recipient(address, CONFIG)
    assert str(caught.value.reply).startswith(reply)  # type: ignore[attr-defined]


def test_national_numbers_with_a_country_code() -> None:
    uk = GatewayConfig(domains=("sms.carrier-a.example",), country_code="44")
    assert parse_recipient("07700900123@sms.carrier-a.example", uk).msisdn == "447700900123"
    assert parse_recipient("+447700900123@sms.carrier-a.example", uk).msisdn == "447700900123"


def test_unknown_subscriber_is_550_5_1_1() -> None:
    with pytest.raises(UnknownSubscriber) as caught:
        judge_recipient("447700900999@sms.carrier-a.example", CONFIG, lambda msisdn: False)
    assert caught.value.reply.code == 550
    assert caught.value.reply.enhanced == "5.1.1"
    recipient = judge_recipient("447700900123@sms.carrier-a.example", CONFIG, {"447700900123"}.__contains__)
    assert recipient == Recipient("447700900123", "sms.carrier-a.example")


def test_reply_line() -> None:
    assert str(SmtpReply(550, "5.1.1", "no such subscriber")) == "550 5.1.1 no such subscriber"


@pytest.mark.parametrize("max_segments", [0, 256])
def test_config_rejects_impossible_segment_limits(max_segments: int) -> None:
    with pytest.raises(ValueError, match="max_segments"):
        GatewayConfig(domains=("sms.carrier-a.example",), max_segments=max_segments)


# -- mail to SMS --------------------------------------------------------------------------------------------


def test_subject_and_body_become_one_gsm_segment() -> None:
    sms = mail_to_sms(mail("Subject: Hello\n\nSee you at 5.\n\n-- \nAlice, sent from a desk\n"), CONFIG)
    assert sms.text == "Hello: See you at 5."
    assert sms.data_coding is DataCoding.SMSC_DEFAULT
    assert len(sms.segments) == 1
    assert not sms.segments[0].esm_class_udhi
    assert not sms.truncated


def test_subject_or_body_alone() -> None:
    assert mail_to_sms(mail("Subject: only a subject\n\n"), CONFIG).text == "only a subject"
    assert mail_to_sms(mail("From: a@b.example\n\nonly a body\n"), CONFIG).text == "only a body"
    with pytest.raises(EmptyMessage) as caught:
        mail_to_sms(mail("Subject:   \n\n  \n"), CONFIG)
    assert str(caught.value.reply).startswith("554 5.6.0")


def test_quoted_printable_latin1_and_encoded_subject() -> None:
    raw = (
        "Subject: =?utf-8?q?Caf=C3=A9?=\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=iso-8859-1\n"
        "Content-Transfer-Encoding: quoted-printable\n\n"
        "Cr=E8me br=FBl=E9e =\nis ready\n"
    )
    sms = mail_to_sms(mail(raw), CONFIG)
    assert sms.text == "Café: Crème brûlée is ready"
    # é and è are in GSM 03.38, û is not: the text goes as UCS-2.
    assert sms.data_coding is DataCoding.UCS2
    assert text_of(sms.segments) == sms.text


def test_base64_utf8_multipart_prefers_plain() -> None:
    plain = base64.b64encode("Привет, мир".encode()).decode()
    raw = (
        "Subject: hi\nMIME-Version: 1.0\n"
        'Content-Type: multipart/alternative; boundary="b"\n\n'
        "--b\nContent-Type: text/html; charset=utf-8\n\n<p>html version</p>\n"
        f"--b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n{plain}\n"
        "--b--\n"
    )
    sms = mail_to_sms(mail(raw), CONFIG)
    assert sms.text == "hi: Привет, мир"
    assert sms.data_coding is DataCoding.UCS2


def alternative(plain: str, html: str, subject: str = "") -> EmailMessage:
    """A multipart/alternative of a text/plain and a text/html part."""
    return mail(
        f"Subject: {subject}\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=XX\n\n"
        f"--XX\nContent-Type: text/plain; charset=utf-8\n\n{plain}\n"
        f"--XX\nContent-Type: text/html; charset=utf-8\n\n{html}\n--XX--\n"
    )


@pytest.mark.parametrize("plain", ["", " ", " \n\t\n ", "\u00a0", "-- \nsent from a desk"])
def test_a_blank_plain_alternative_gives_way_to_the_html(plain: str) -> None:
    # Refused as "neither subject nor text" before: the plain part was chosen, found blank, and the HTML,
    # which held the code, never looked at.
    sms = mail_to_sms(alternative(plain, "<p>Your code is 123456</p>"), CONFIG)
    assert sms.text == "Your code is 123456"
    assert mail_to_sms(alternative(plain, "<p>123456</p>", subject="Code"), CONFIG).text == "Code: 123456"


def test_a_plain_alternative_with_text_still_wins_and_two_blank_ones_are_empty() -> None:
    assert mail_to_sms(alternative("plain 1", "<p>html 2</p>"), CONFIG).text == "plain 1"
    with pytest.raises(EmptyMessage):
        mail_to_sms(alternative(" ", "<p> </p><style>p {}</style>"), CONFIG)
    assert mail_to_sms(alternative(" ", "<br>", subject="only"), CONFIG).text == "only"


def test_html_only_loses_its_tags() -> None:
    raw = (
        "Subject: s\nContent-Type: text/html; charset=utf-8\n\n"
        "<html><head><style>p {}</style></head><body><p>Code <b>123456</b></p><script>x()</script></body></html>\n"
    )
    assert mail_to_sms(mail(raw), CONFIG).text == "s: Code 123456"


def test_no_text_part_and_unknown_charset_are_refused() -> None:
    with pytest.raises(UnsupportedContent) as caught:
        mail_to_sms(mail("Subject: pic\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\nAAAA\n"), CONFIG)
    assert str(caught.value.reply).startswith("554 5.6.1")
    with pytest.raises(UnknownCharset) as unknown:
        mail_to_sms(mail("Subject: x\nContent-Type: text/plain; charset=x-klingon\n\nqapla\n"), CONFIG)
    assert str(unknown.value.reply).startswith("554 5.6.3")


@pytest.mark.parametrize("content_type", ["text/calendar; method=REQUEST", "text/csv", "text/enriched"])
def test_a_text_type_other_than_plain_or_html_is_no_text_part(content_type: str) -> None:
    # Sent raw as the SMS before ("BEGIN:VCALENDAR..."), though the body is the text/plain part, else text/html.
    raw = f"Subject: invite\nContent-Type: {content_type}\n\nBEGIN:VCALENDAR\nVERSION:2.0\nEND:VCALENDAR\n"
    with pytest.raises(UnsupportedContent) as caught:
        mail_to_sms(mail(raw), CONFIG)
    assert str(caught.value.reply) == (
        f"554 5.6.1 no text/plain or text/html part in {content_type.partition(';')[0]}"
    )


@pytest.mark.parametrize("content_type", ["text/plain", "text/html"])
def test_a_lone_text_part_marked_as_an_attachment_is_still_the_body(content_type: str) -> None:
    raw = f"Content-Type: {content_type}\nContent-Disposition: attachment; filename=a.txt\n\ncode 42\n"
    assert mail_to_sms(mail(raw), CONFIG).text == "code 42"


def test_long_gsm_text_splits_into_concatenated_parts() -> None:
    body = "x" * 300
    sms = mail_to_sms(mail(f"From: a@b.example\n\n{body}\n"), CONFIG)
    assert [len(segment.short_message) for segment in sms.segments] == [6 + 153, 6 + 147]
    assert all(segment.esm_class_udhi for segment in sms.segments)
    assert text_of(sms.segments) == body


def test_long_text_is_trimmed_to_the_segment_limit() -> None:
    sms = trim_to_segments("y" * 1000, CONFIG)
    assert sms.truncated
    assert len(sms.segments) == 3
    assert sms.text == "y" * (3 * 153)


def test_trimming_away_the_non_gsm_tail_keeps_gsm_coding() -> None:
    config = GatewayConfig(domains=("d.example",), max_segments=1)
    sms = trim_to_segments("a" * 200 + "€ and ☃", config)
    assert sms.data_coding is DataCoding.SMSC_DEFAULT
    assert sms.text == "a" * 160


def test_ucs2_trim_never_splits_a_character() -> None:
    config = GatewayConfig(domains=("d.example",), max_segments=2)
    sms = trim_to_segments("☃" * 100 + "😀" * 100, config)
    assert sms.data_coding is DataCoding.UCS2
    assert len(sms.segments) == 2
    assert text_of(sms.segments) == sms.text


def test_refuse_overflow_is_552() -> None:
    config = GatewayConfig(domains=("d.example",), max_segments=1, overflow=Overflow.REFUSE)
    with pytest.raises(MessageTooLong) as caught:
        trim_to_segments("z" * 161, config)
    assert str(caught.value.reply).startswith("552 5.3.4")
    assert len(trim_to_segments("z" * 160, config).segments) == 1


def test_sar_mode_and_reference() -> None:
    config = GatewayConfig(domains=("d.example",), mode=SegmentationMode.SAR)
    sms = trim_to_segments("w" * 200, config, reference=77)
    assert [segment.sar.msg_ref_num for segment in sms.segments if segment.sar] == [77, 77]


@settings(max_examples=60, deadline=None)
@given(text=st.text(min_size=1, max_size=800), max_segments=st.integers(1, 6))
def test_trimmed_text_is_a_prefix_that_fits(text: str, max_segments: int) -> None:
    config = GatewayConfig(domains=("d.example",), max_segments=max_segments)
    sms = trim_to_segments(text, config)  # st.text() never draws a surrogate, so every text is encodable
    assert len(sms.segments) <= max_segments
    assert text.startswith(sms.text)
    assert text_of(sms.segments) == sms.text



@pytest.mark.parametrize("text", ["a\ud800b", "\udfff", "x" * 200 + "\udc00"])
def test_a_lone_surrogate_is_a_typed_coding_error(text: str) -> None:
    # No SMS alphabet holds a lone surrogate: not GSM 7-bit, and UCS-2 only holds real code points.
    with pytest.raises(TextCodingError, match="cannot be encoded"):
        trim_to_segments(text, GatewayConfig(domains=("d.example",)))


@pytest.mark.parametrize(
    ("raw", "code_point"),
    [
        # Python's utf-7 decodes a lone surrogate half without complaint, and so do the *_escape codecs; any
        # codec name Python knows is a charset the email package will use.
        (b"Content-Type: text/plain; charset=utf-7\r\n\r\nhello +2AA- world\r\n", "U+D800"),
        (b"Content-Type: text/plain; charset=unicode_escape\r\n\r\nhi \\ud800 x\r\n", "U+D800"),
        (b"Subject: s\r\nContent-Type: text/plain; charset=raw_unicode_escape\r\n\r\nx\\udc80\r\n", "U+DC80"),
        (b"Content-Type: text/html; charset=utf-7\r\n\r\n<p>code +3/8-</p>\r\n", "U+DFFF"),
    ],
)
def test_text_that_decodes_to_a_lone_surrogate_is_a_typed_refusal(raw: bytes, code_point: str) -> None:
    # It reached split_text and raised TextCodingError, which is no MailRefused: the gateway answered 451.
    with pytest.raises(UnconvertibleText) as caught:
        mail_to_sms(parse_message(raw), SENDER_SHOWN, envelope_from="alice@example.com")
    assert str(caught.value.reply).startswith(f"554 5.6.5 text decodes to {code_point}")


def test_a_surrogate_pair_in_utf7_is_one_character_and_is_sent() -> None:
    raw = b"Content-Type: text/plain; charset=utf-7\r\n\r\nhi +2D3eAA- x\r\n"
    assert mail_to_sms(parse_message(raw), CONFIG).text == "hi \U0001f600 x"


# -- SMS to mail --------------------------------------------------------------------------------------------


def test_mo_to_short_code_with_address_and_subject() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    message = sms_to_mail(
        "+447700900123", "6245", "alice@example.com (Lunch) see you at 1", CONFIG, date=when, message_id="<1@x>"
    )
    assert message["From"] == "447700900123@sms.carrier-a.example"
    assert message["To"] == "alice@example.com"
    assert message["Subject"] == "Lunch"
    assert message["Message-ID"] == "<1@x>"
    assert message["Date"].datetime == when
    assert message.get_content() == "see you at 1\n"


def test_mo_with_address_as_destination_keeps_all_text() -> None:
    message = sms_to_mail("447700900123", "bob@example.org", "Привет 😀", CONFIG)
    assert message["To"] == "bob@example.org"
    assert message["Subject"] is None
    assert message.get_content() == "Привет 😀\n"


@pytest.mark.parametrize(
    ("source", "destination", "text"),
    [
        ("447700900123", "447700900999", "alice@example.com hi"),
        ("447700900123", "6245", "not-an-address hi"),
        ("447700900123", "6245", "   "),
        ("447700900123", "6245", "a@b hi"),
        ("447700900123", "a@@b.example", "hi"),
        ("sender", "6245", "alice@example.com hi"),
    ],
)
def test_mo_not_for_mail(source: str, destination: str, text: str) -> None:
    with pytest.raises(MoNotForMail):
        sms_to_mail(source, destination, text, CONFIG)


def test_failure_notice_names_the_failed_subscribers() -> None:
    notice = delivery_failure_notice("carol@example.net", ["447700900123"], CONFIG)
    assert notice["To"] == "carol@example.net"
    assert notice["From"].addresses[0].addr_spec == "MAILER-DAEMON@mail.carrier-a.example"
    assert notice.get_content_type() == "multipart/report"
    human, status = notice.iter_parts()
    assert "447700900123@sms.carrier-a.example" in human.get_content()
    assert "Final-Recipient: rfc822; 447700900123@sms.carrier-a.example" in status.as_string()


def test_failure_notice_names_a_postmaster_that_did_not_take_the_message() -> None:
    notice = delivery_failure_notice("carol@example.net", ["447700900123"], CONFIG, postmaster="Postmaster")
    human, status = notice.iter_parts()
    assert "Postmaster@mail.carrier-a.example: the postmaster's mailbox did not take the message" in (
        human.get_content()
    )
    assert final_recipients(status) == [
        "rfc822; 447700900123@sms.carrier-a.example",
        "rfc822; Postmaster@mail.carrier-a.example",  # RFC 5321 section 4.5.1: the bare name is ours
    ]
    alone = delivery_failure_notice("carol@example.net", [], CONFIG, postmaster="postmaster@sms.carrier-a.example")
    _, status = alone.iter_parts()
    assert final_recipients(status) == ["rfc822; postmaster@sms.carrier-a.example"]


def final_recipients(status: Message) -> list[str]:
    """The Final-Recipient of each per-recipient block of a message/delivery-status part."""
    blocks = status.get_payload()
    assert isinstance(blocks, list)
    recipients = []
    for block in blocks[1:]:
        assert isinstance(block, Message)
        recipients.append(str(block["Final-Recipient"]))
    return recipients


@pytest.mark.parametrize(
    ("html", "text"),
    [
        # HTML may omit </head>: the head ends where the body starts, and the OTP is not lost.
        ("<html><head><meta charset=utf-8><body><p>Your code is 123456</p></body></html>", "Your code is 123456"),
        ("<head><title>Sign-in</title><link rel=x><div>Code 42</div>", "Code 42"),
        ("<head><title>Sign-in</title>Code 42", "Code 42"),
        ("<head><style>p {}</style></head><p>shown</p>", "shown"),
        ("<table><tr><td>Code</td><td>123456</td></tr></table>", "Code 123456"),
        ("<h1>Title</h1><h2>Sub</h2>text", "Title\nSub\ntext"),
    ],
)
def test_html_text_without_closing_head(html: str, text: str) -> None:
    raw = f"Content-Type: text/html; charset=utf-8\n\n{html}\n"
    assert mail_to_sms(mail(raw), CONFIG).text == text


#: A multipart/related without its boundary inside a multipart/mixed: get_body meets a str where it expects
#: a part.
NESTED_WITHOUT_BOUNDARY = (
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n"
    b"--x\r\nContent-Type: multipart/related\r\n\r\nhello\r\n--x--\r\n"
)
NUL_IN_CHARSET = b'Content-Type: text/plain; charset="ut\x00f-8"\r\n\r\nhello\r\n'


def test_malformed_mime_is_a_typed_refusal() -> None:
    with pytest.raises(MalformedContent) as caught:
        mail_to_sms(parse_message(NESTED_WITHOUT_BOUNDARY), CONFIG)
    assert str(caught.value.reply).startswith("554 5.6.0 ")
    with pytest.raises(UnknownCharset) as charset:
        mail_to_sms(parse_message(NUL_IN_CHARSET), CONFIG)
    assert str(charset.value.reply) == "554 5.6.3 charset 'ut\\x00f-8' is not supported"


def deeply_nested(depth: int) -> bytes:
    """A text/plain part inside ``depth`` multipart/mixed, each in the one before: about 56 octets a level."""
    opening = b"".join(
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1) for i in range(depth)
    )
    return (b"Subject: nest\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n" + opening
            + b"--b%d\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b%d--\r\n" % (depth, depth))


def test_a_mime_structure_nested_past_the_parsers_stack_is_a_typed_refusal() -> None:
    # 2,000 levels are ~114 KB, under the gateway's DATA limit, and far past what the parser's recursion holds.
    with pytest.raises(MalformedContent) as caught:
        parse_message(deeply_nested(2_000))
    assert str(caught.value.reply) == "554 5.6.0 malformed MIME structure (nested too deeply)"
    # A depth the parser does hold is read as usual.
    assert mail_to_sms(parse_message(deeply_nested(50)), CONFIG).text == "nest: hi"


def test_reply_text_is_one_ascii_line() -> None:
    assert str(SmtpReply(554, "5.6.3", "charset 'a\r\n250 ok é' is not supported")) == (
        "554 5.6.3 charset 'a\\r\\n250 ok \\xe9' is not supported"
    )


_SEEDS = [
    b"Subject: =?utf-8?q?h=C3=A9?=\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 =E2=82=AC\r\n-- \r\nsig\r\n",
    b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n"
    b"Content-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: base64\r\n\r\nPGI+aOlsbG88L2I+\r\n"
    b"--b\r\nContent-Type: text/plain\r\n\r\nPLAIN\r\n--b--\r\n",
    b"Content-Type: text/html\r\n\r\n<html><head><title>t</title></head><body><p>a&amp;b</p><br>d&#128512;</body>\r\n",
    b"Subject: s\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\n\r\n--x\r\nContent-Type: multipart/related; "
    b"boundary=y\r\n\r\n--y\r\nContent-Type: text/plain; charset=\"utf-16\"\r\nContent-Transfer-Encoding: base64"
    b"\r\n\r\n//5oAGkA\r\n--y--\r\n--x--\r\n",
    # Charsets whose decoders let a lone surrogate through (utf-7's +2AA-, unicode_escape's \\ud800): the text
    # no SMS alphabet holds must still end as a typed refusal.
    b"Subject: s\r\nContent-Type: text/plain; charset=utf-7\r\n\r\nprice +AKM-5 +2D3eAA- +2AA-\r\n",
    b"Content-Type: text/plain; charset=unicode_escape\r\n\r\nline\\n\\u00e9 \\U0001f600 \\ud800\r\n",
]
_TOKENS = [b"\r\n", b"=", b"?", b"\x00", b"\xff", b"--", b"<", b">", b"&#", b";", b"charset=", b"boundary=", b'"',
           b"Content-Type: ", b"=?", b"?=", b"&#xD800;", b"\xed\xa0\x80", b"utf-16", b"base64", b"\t", b"\\",
           # Charsets whose decoders yield lone surrogates, and what they decode to one.
           b"utf-7", b"unicode_escape", b"raw_unicode_escape", b"punycode", b"+2AA-", b"+3/8-", b"\\ud800",
           b"\\udfff"]


@st.composite
def damaged_mail(draw: st.DrawFn) -> bytes:
    """A real-looking mail with a few cuts and insertions: MIME the email package half-understands."""
    raw = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(raw)))
        edit = draw(st.sampled_from(["token", "cut", "byte"]))
        if edit == "token":
            raw[at:at] = draw(st.sampled_from(_TOKENS))
        elif edit == "cut":
            del raw[at : at + draw(st.integers(1, 10))]
        else:
            raw[at:at] = bytes([draw(st.integers(0, 255))])
    return bytes(raw)


@settings(max_examples=400, deadline=None)
@given(damaged_mail())
def test_any_content_is_sms_or_a_typed_refusal(raw: bytes) -> None:
    try:
        sms = mail_to_sms(parse_message(raw), CONFIG)
    except MailRefused as refusal:
        assert refusal.reply.code == 554 or refusal.reply.code == 552
        assert "\n" not in str(refusal.reply)
    else:
        assert text_of(sms.segments) == sms.text


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        # RFC 3676 signature delimiter on the body's very first line: all of it is signature.
        (b"Subject: s\r\n\r\n-- \r\nJohn, sent from a desk\r\n", "s"),
        # &nbsp; (and a raw U+00A0) is a plain space, so the text stays GSM 7-bit.
        (b"Content-Type: text/html\r\n\r\n<p>Hello&nbsp;there</p>\r\n", "Hello there"),
        (b"Subject: s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ncode\xc2\xa0123\r\n", "s: code 123"),
        # Undeclared 8-bit that is valid UTF-8 is read as UTF-8, not as replacement characters.
        ("Subject: s\r\n\r\ncafé ok\r\n".encode(), "s: café ok"),
        # A NUL or a backspace is no text for a handset.
        (b"Subject: s\r\n\r\nhel\x00lo\x08\r\n", "s: hello"),
    ],
)
def test_small_translation_faults(raw: bytes, text: str) -> None:
    sms = mail_to_sms(parse_message(raw), CONFIG)
    assert sms.text == text
    assert sms.data_coding is DataCoding.SMSC_DEFAULT


def test_undeclared_8bit_that_is_not_utf8_still_arrives() -> None:
    assert mail_to_sms(parse_message(b"Subject: s\r\n\r\ncaf\xe9\r\n"), CONFIG).text == "s: caf\ufffd"


def test_international_prefix_is_not_prefixed_again() -> None:
    uk = GatewayConfig(domains=("sms.carrier-a.example",), country_code="44")
    assert parse_recipient("00447700900123@sms.carrier-a.example", uk).msisdn == "447700900123"
    assert parse_recipient("00447700900123@sms.carrier-a.example", CONFIG).msisdn == "447700900123"
    assert parse_recipient("07700900123@sms.carrier-a.example", uk).msisdn == "447700900123"
    none = GatewayConfig(domains=("sms.carrier-a.example",), country_code="44", international_prefix="")
    assert parse_recipient("00447700900123@sms.carrier-a.example", none).msisdn == "440447700900123"


@pytest.mark.parametrize(
    ("destination", "text", "to", "subject", "body"),
    [
        # The address ends at the first white space of any kind.
        ("6245", "bob@example.com\nhi there", "bob@example.com", None, "hi there\n"),
        ("6245", "bob@example.com\t(Lunch) see you", "bob@example.com", "Lunch", "see you\n"),
        # A parenthesised run with a line break is text, never a header (nor a way to add one).
        ("6245", "bob@example.com (Lunch\nplans) see you", "bob@example.com", None, "(Lunch\nplans) see you\n"),
        ("bob@example.com", "(Hi\r\nBcc: evil@x.example) body", "bob@example.com", None,
         "(Hi\nBcc: evil@x.example) body\n"),
        ("bob@example.com", "(Hi\u2028Bcc: evil@x.example) body", "bob@example.com", None,
         "(Hi\u2028Bcc: evil@x.example) body\n"),
        # A phone number in parentheses is no subject.
        ("bob@example.com", "(555) 123-4567 call me", "bob@example.com", None, "(555) 123-4567 call me\n"),
        ("6245", "bob@example.com (555) 123-4567", "bob@example.com", None, "(555) 123-4567\n"),
        ("bob@example.com", "(Lunch)", "bob@example.com", "Lunch", "\n"),
    ],
)
def test_mo_text_forms(destination: str, text: str, to: str, subject: str | None, body: str) -> None:
    message = sms_to_mail("447700900123", destination, text, CONFIG)
    assert message["To"] == to
    assert message["Subject"] == subject
    assert message["Bcc"] is None
    assert message.get_content() == body
    assert parse_message(message.as_bytes())["Bcc"] is None


@pytest.mark.parametrize(
    ("address", "postmaster"),
    [
        ("postmaster", True),
        ("PostMaster", True),
        ("postmaster@sms.carrier-a.example", True),
        ("postmaster@TXT.carrier-a.example.", True),
        ("postmaster@mail.carrier-a.example", True),
        ("postmaster@sms.carrier-b.example", False),
        ("postmaster@pager.carrier-a.example", False),
        ("abuse@sms.carrier-a.example", False),
        ("447700900123@sms.carrier-a.example", False),
    ],
)
def test_postmaster(address: str, postmaster: bool) -> None:
    assert is_postmaster(address, CONFIG) is postmaster


# -- the sender part -----------------------------------------------------------------------------------------


def test_sender_is_the_from_addr_spec_without_its_display_name() -> None:
    message = mail("From: Alice Smith <alice@example.com>\nSubject: Lunch\n\nsee you at 1\n")
    sms = mail_to_sms(message, SENDER_SHOWN, envelope_from="bounces@lists.example")
    assert sms.text == "alice@example.com / Lunch: see you at 1"
    assert (sms.sender, sms.reply_to) == ("alice@example.com", "alice@example.com")


def test_sender_falls_back_to_the_envelope() -> None:
    for headers in ["", "From: undisclosed-recipients:;\n", "From: Alice\n", "From: <>\n", "From: a@b c@d\n"]:
        sms = mail_to_sms(mail(f"{headers}Subject: s\n\nhi\n"), SENDER_SHOWN, envelope_from="bob@example.org")
        assert sms.text == "bob@example.org / s: hi", headers
        assert sms.sender == sms.reply_to == "bob@example.org"


@pytest.mark.parametrize("envelope_from", [None, "", "<>", "not an address"])
def test_no_sender_part_for_the_null_sender(envelope_from: str | None) -> None:
    sms = mail_to_sms(mail("Subject: s\n\nhi\n"), SENDER_SHOWN, envelope_from=envelope_from)
    assert sms.text == "s: hi"
    assert sms.sender is None
    assert sms.reply_to is None


def test_separator_none_shows_no_sender_yet_keeps_the_reply_address() -> None:
    sms = mail_to_sms(mail("From: alice@example.com\n\nhi\n"), CONFIG)
    assert sms.text == "hi"
    assert sms.sender is None
    assert sms.reply_to == "alice@example.com"


def test_reply_to_header_is_where_replies_go() -> None:
    message = mail("From: alice@example.com\nReply-To: Team <team@example.com>\n\nhi\n")
    sms = mail_to_sms(message, SENDER_SHOWN)
    assert sms.text == "alice@example.com / hi"
    assert sms.reply_to == "team@example.com"
    # An unusable Reply-To is ignored, not a reason to lose the reply path.
    assert reply_address(mail("From: alice@example.com\nReply-To: nobody\n\nhi\n")) == "alice@example.com"


def test_a_custom_separator() -> None:
    config = GatewayConfig(domains=("d.example",), sender_separator="\n")
    assert mail_to_sms(mail("From: alice@example.com\n\nhi\n"), config).text == "alice@example.com\nhi"


@pytest.mark.parametrize(
    ("from_", "shown"),
    [
        # An encoded CR LF in the display name or in the address: the header cannot be read, so the envelope.
        ("=?utf-8?q?Alice=0D=0ABcc=3A_x?= <alice@example.com>", "env@example.org"),
        ("=?utf-8?q?evil=0D=0A?=@example.com", "env@example.org"),
        # An encoded word in an addr-spec (RFC 2047 section 5 forbids it) is not what the header holds.
        ("=?utf-8?q?ceo?=@bank.example", "env@example.org"),
        # Encoded words in a display name are fine: the name is never shown.
        ("=?utf-8?q?Jos=C3=A9?= <jose@example.com>", "jose@example.com"),
        # Non-ASCII local parts cannot be replied to; undecodable 8-bit is no address at all.
        ("José <josé@example.com>", "env@example.org"),
        ("\udcff\udcfe@example.com", "env@example.org"),
        # Controls, quoted local parts, bidi overrides and look-alike display names.
        ("alice@exa\x1bmple.com", "env@example.org"),
        ('"a b"@example.com', "env@example.org"),
        ("alice\u202e@example.com", "env@example.org"),
        ('"bank@example.com" <evil@example.net>', "evil@example.net"),
        ("alice@example.com (comment)", "alice@example.com"),
        ("x" * 250 + "@example.com", "env@example.org"),
    ],
)
def test_header_injection_in_from_never_shows_garbage(from_: str, shown: str) -> None:
    raw = f"From: {from_}\r\nSubject: s\r\n\r\nhi\r\n".encode("utf-8", "surrogateescape")
    sms = mail_to_sms(parse_message(raw), SENDER_SHOWN, envelope_from="env@example.org")
    assert sms.text == f"{shown} / s: hi"


_HEADER_TOKENS = ["\r\n", "\r\n ", "\n", "=?utf-8?q?", "=0D=0A", "?=", "<", ">", "@", '"', ",", ";", ":", "(", ")",
                  "\x00", "\x1b", "é", "\u202e", "\ufffd", "Bcc: x@y.example", "alice", "example.com", " ", "."]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_HEADER_TOKENS), max_size=12))
def test_any_from_header_shows_a_clean_address_or_none(tokens: list[str]) -> None:
    raw = ("From: " + "".join(tokens) + "\r\nSubject: s\r\n\r\nhi\r\n").encode("utf-8")
    message = parse_message(raw)
    sender = sender_address(message)
    if sender is not None:
        local, at, domain = sender.partition("@")
        assert at
        assert local
        assert "." in domain
        assert sender.isprintable()
        assert local.isascii()
        assert not any(char.isspace() or char in '<>",;\ufffd\u202e' for char in sender)
    sms = mail_to_sms(message, SENDER_SHOWN)
    assert text_of(sms.segments) == sms.text
    # The rest is what the gateway makes of the mail without a sender (a CR LF token may end the headers early).
    rest = mail_to_sms(message, CONFIG).text
    assert sms.text == (f"{sender} / {rest}" if sender is not None else rest)


def test_a_long_sender_and_a_long_body_trim_only_the_body() -> None:
    sender = "a.very.long.local.part." * 4 + "x@example.com"  # 105 characters
    sms = mail_to_sms(mail(f"From: {sender}\n\n{'b' * 1000}\n"), SENDER_SHOWN)
    assert sms.truncated
    assert len(sms.segments) == 3
    assert sms.text == f"{sender} / " + "b" * (3 * 153 - len(sender) - 3)
    assert sms.sender == sender


def test_a_sender_that_leaves_no_room_is_left_out_whole() -> None:
    sender = "s" * 150 + "@example.com"  # alone past the 160 characters of one SMS
    config = GatewayConfig(domains=("d.example",), max_segments=1)
    sms = mail_to_sms(mail(f"From: {sender}\n\n{'b' * 300}\n"), config)
    assert sms.text == "b" * 160
    assert sms.truncated
    assert sms.sender is None
    assert sms.reply_to == sender  # a reply still finds its way, even though the address was not shown


def test_a_short_message_with_a_long_sender_that_just_fits_is_not_trimmed() -> None:
    sender = "s" * 140 + "@example.com"  # 152 + " / " + "hi" = 157 characters: one SMS
    sms = mail_to_sms(mail(f"From: {sender}\n\nhi\n"), GatewayConfig(domains=("d.example",), max_segments=1))
    assert (sms.text, sms.truncated) == (f"{sender} / hi", False)


def test_the_sender_counts_under_refuse() -> None:
    config = GatewayConfig(domains=("d.example",), max_segments=1, overflow=Overflow.REFUSE)
    body = "z" * 150  # fits alone; not after "alice@example.com / "
    assert mail_to_sms(mail(f"\n{body}\n"), config).text == body
    with pytest.raises(MessageTooLong):
        mail_to_sms(mail(f"From: alice@example.com\n\n{body}\n"), config)


def test_trimming_away_a_non_gsm_tail_after_the_sender_keeps_gsm_coding() -> None:
    config = GatewayConfig(domains=("d.example",), max_segments=1)
    sms = mail_to_sms(mail(f"From: alice@example.com\n\n{'a' * 200} € and ☃\n"), config)
    assert sms.data_coding is DataCoding.SMSC_DEFAULT
    assert sms.text == "alice@example.com / " + "a" * (160 - 20)


_ADDRESSES = st.from_regex(r"[a-z0-9._+-]{1,80}@[a-z0-9-]{1,40}\.[a-z]{2,6}", fullmatch=True).filter(
    lambda address: not address.startswith(".") and ".." not in address.partition("@")[0]
    and not address.partition("@")[0].endswith(".")
)


@settings(max_examples=150, deadline=None)
@given(sender=_ADDRESSES, body=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1,
                                        max_size=700), max_segments=st.integers(1, 4))
def test_the_sender_is_whole_or_absent_and_the_body_a_prefix(sender: str, body: str, max_segments: int) -> None:
    message = EmailMessage()
    message["From"] = sender
    message.set_content(body)
    config = GatewayConfig(domains=("d.example",), max_segments=max_segments)
    try:
        sms = mail_to_sms(message, config)
    except EmptyMessage:
        return
    assert len(sms.segments) <= max_segments
    assert text_of(sms.segments) == sms.text
    plain = mail_to_sms(message, GatewayConfig(domains=("d.example",), max_segments=255, sender_separator=None))
    if sms.sender is not None:
        assert sms.text.startswith(f"{sender} / ")
        assert sms.text != f"{sender} /"  # never the address alone
        assert plain.text.startswith(sms.text.removeprefix(f"{sender} / "))
    else:
        assert plain.text.startswith(sms.text)
    if all(gsm7.is_gsm7(char) for char in sms.text):
        assert sms.data_coding is DataCoding.SMSC_DEFAULT


# -- replies to the short code -------------------------------------------------------------------------------


def test_a_reply_without_an_address_goes_to_the_remembered_sender() -> None:
    message = sms_to_mail("447700900123", "6245", "(Lunch) ok, see you", CONFIG, reply_to="alice@example.com")
    assert message["To"] == "alice@example.com"
    assert message["Subject"] == "Lunch"
    assert message.get_content().rstrip() == "ok, see you"
    message = sms_to_mail("447700900123", "6245", "sure\nthanks", CONFIG, reply_to="alice@example.com")
    assert message.get_content().rstrip() == "sure\nthanks"


def test_an_explicit_address_wins_over_the_reply_path() -> None:
    message = sms_to_mail("447700900123", "6245", "bob@example.org hi", CONFIG, reply_to="alice@example.com")
    assert message["To"] == "bob@example.org"
    assert message.get_content().rstrip() == "hi"


@pytest.mark.parametrize(
    ("text", "reply_to"),
    [
        ("no address here", None),  # nothing remembered
        ("bob@examplecom hi", "alice@example.com"),  # a mistyped address does not go to alice instead
        ("   ", "alice@example.com"),  # an empty reply is no mail
        ("ok", "bad address\r\nBcc: x@y.example"),  # a reply path is checked too
    ],
)
def test_replies_that_are_not_mail(text: str, reply_to: str | None) -> None:
    with pytest.raises(MoNotForMail):
        sms_to_mail("447700900123", "6245", text, CONFIG, reply_to=reply_to)


def test_the_reply_path_is_only_for_the_short_code() -> None:
    with pytest.raises(MoNotForMail):
        sms_to_mail("447700900123", "12345", "ok", CONFIG, reply_to="alice@example.com")


def test_the_recipient_limit_is_the_rfc_minimum_by_default_and_at_least_one() -> None:
    assert GatewayConfig(domains=("d.example",)).max_recipients == 100  # RFC 5321 section 4.5.3.1.8
    with pytest.raises(ValueError, match="max_recipients"):
        GatewayConfig(domains=("d.example",), max_recipients=0)


def test_reply_paths_cannot_be_negative() -> None:
    with pytest.raises(ValueError, match="reply_paths"):
        GatewayConfig(domains=("d.example",), reply_paths=-1)
