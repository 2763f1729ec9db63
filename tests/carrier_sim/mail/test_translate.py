"""The pure email-to-SMS translation: recipients and their SMTP replies, mail to SMS text, SMS to mail."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from email.message import EmailMessage

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
    UnknownCharset,
    UnknownSubscriber,
    UnsupportedContent,
    delivery_failure_notice,
    is_postmaster,
    judge_recipient,
    mail_to_sms,
    parse_message,
    parse_recipient,
    sms_to_mail,
    trim_to_segments,
)
from carrier_sim.smpp.coding import DataCoding, decode_text
from carrier_sim.smpp.segmentation import Segment, SegmentationMode
from carrier_sim.smpp.udh import split_user_data

CONFIG = GatewayConfig(
    domains=("sms.carrier-a.example", "txt.carrier-a.example"),
    retired_domains=("pager.carrier-a.example",),
    short_code="6245",
    hostname="mail.carrier-a.example",
)


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
    try:
        sms = trim_to_segments(text, config)
    except Exception as exc:  # only text no coding can hold (a lone surrogate) may fail
        assert "cannot be encoded" in str(exc)
        return
    assert len(sms.segments) <= max_segments
    assert text.startswith(sms.text)
    assert text_of(sms.segments) == sms.text


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
]
_TOKENS = [b"\r\n", b"=", b"?", b"\x00", b"\xff", b"--", b"<", b">", b"&#", b";", b"charset=", b"boundary=", b'"',
           b"Content-Type: ", b"=?", b"?=", b"&#xD800;", b"\xed\xa0\x80", b"utf-16", b"base64", b"\t", b"\\"]


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
