"""The SMTP analyzer: sessions as byte literals in, exact records out."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor.proto.analyzer import ConnInfo
from sensor.proto.analyzers.smtp import MAX_ADDRESSES, MAX_PENDING, SMTPAnalyzer
from sensor.proto.parsers.smtp import MAX_LINE

SCHEMAS = Path(__file__).resolve().parents[2] / "sensor" / "output" / "schemas"
DEEP = os.environ.get("SENSOR_FUZZ") == "deep"
FUZZ = settings(
    max_examples=2000 if DEEP else 100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

CONN = ConnInfo("CTest1", "tcp", "10.0.0.1", 1025, "10.0.0.2", 25)
C, S = True, False  # originator (client), responder (server)

Step = tuple[bool, bytes]


def run(
    steps: list[Step], conn: ConnInfo = CONN
) -> tuple[list[tuple[str, dict[str, Any]]], SMTPAnalyzer]:
    """Feed ``steps`` one second apart (ts 1, 2, ...); end the connection."""
    out: list[tuple[str, dict[str, Any]]] = []
    analyzer = SMTPAnalyzer(conn, lambda name, rec: out.append((name, rec)))
    for n, (is_orig, data) in enumerate(steps, 1):
        if not analyzer.done:
            analyzer.data(is_orig, float(n), data)
    analyzer.end(float(len(steps) + 1))
    return out, analyzer


def smtp(records: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [r for n, r in records if n == "smtp"]


def files(records: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [r for n, r in records if n == "files"]


def validate(records: list[tuple[str, dict[str, Any]]]) -> None:
    for name, record in records:
        schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
        checker = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.FormatChecker()
        )
        errors = [
            e.message for e in checker.iter_errors(json.loads(json.dumps(record)))
        ]
        assert not errors, (name, record, errors)


MESSAGE = (
    b"Received: from relay.example (relay.example [192.0.2.7]) by mx.example (10.0.0.2)\r\n"
    b"Received: from laptop ([198.51.100.9]) by relay.example\r\n"
    b"Received: from v6 ([2001:DB8:0:0::7]) by laptop\r\n"
    b'From: "Doe, Jane" <jane@example.org>\r\n'
    b'To: bob@example.net, "Smith, A" <a@example.net>\r\n'
    b"Cc: c@example.net\r\n"
    b"Subject: invoice\r\n"
    b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    b"Message-ID: <m1@example.org>\r\n"
    b"X-Originating-IP: [203.0.113.5]\r\n"
    b"X-Mailer: Mailer 1.0\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"Pay at http://pay.example/now.\r\n"
    b"..leading dot\r\n"
)

SESSION: list[Step] = [
    (S, b"220 mx.example ESMTP\r\n"),
    (C, b"EHLO laptop\r\n"),
    (S, b"250-mx.example\r\n250-PIPELINING\r\n250 CHUNKING\r\n"),
    (C, b"MAIL FROM:<jane@example.org> SIZE=100\r\n"),
    (S, b"250 ok\r\n"),
    (C, b"RCPT TO:<bob@example.net>\r\n"),
    (S, b"250 ok\r\n"),
    (C, b"RCPT TO:<a@example.net> NOTIFY=NEVER\r\n"),
    (S, b"250 ok\r\n"),
    (C, b"DATA\r\n"),
    (S, b"354 go ahead\r\n"),
    (C, MESSAGE),
    (C, b".\r\n"),
    (S, b"250 2.0.0 queued as X1\r\n"),
    (C, b"QUIT\r\n"),
    (S, b"221 bye\r\n"),
]


def test_one_message_every_field() -> None:
    records, analyzer = run(SESSION)
    fuid = files(records)[0]["fuid"]
    assert smtp(records) == [
        {
            "ts": 1.0,
            "uid": "CTest1",
            "id.orig_h": "10.0.0.1",
            "id.orig_p": 1025,
            "id.resp_h": "10.0.0.2",
            "id.resp_p": 25,
            "trans_depth": 1,
            "helo": "laptop",
            "path": ["10.0.0.2", "10.0.0.1", "10.0.0.2", "198.51.100.9", "2001:db8::7"],
            "tls": False,
            "fuids": [fuid],
            "last_reply": "250 2.0.0 queued as X1",
            "mailfrom": "jane@example.org",
            "rcptto": ["bob@example.net", "a@example.net"],
            "first_received": "from v6 ([2001:DB8:0:0::7]) by laptop",
            "second_received": "from laptop ([198.51.100.9]) by relay.example",
            "from": '"Doe, Jane" <jane@example.org>',
            # Zeek's split_mime_email_addresses: a quoted name after a space
            # is cut at its comma, and so is ours, to log what Zeek logs.
            "to": ["bob@example.net", '"Smith', 'A" <a@example.net>'],
            "cc": ["c@example.net"],
            "subject": "invoice",
            "date": "Mon, 1 Jan 2024 00:00:00 +0000",
            "msg_id": "<m1@example.org>",
            "x_originating_ip": "203.0.113.5",
            "user_agent": "Mailer 1.0",
            "urls": ["http://pay.example/now"],
        }
    ]
    body = b"Pay at http://pay.example/now.\r\n.leading dot\r\n"
    (f,) = files(records)
    assert (f["source"], f["depth"], f["is_orig"], f["seen_bytes"]) == (
        "SMTP",
        1,
        True,
        len(body),
    )
    assert f["sha256"] == hashlib.sha256(body).hexdigest()
    assert f["ts"] == 12.0
    assert analyzer.stats == {}
    validate(records)


def test_any_chunking_gives_the_same_records() -> None:
    whole, _ = run(SESSION)
    stream_c = b"".join(d for o, d in SESSION if o)
    stream_s = b"".join(d for o, d in SESSION if not o)
    # Byte by byte, client and server in lock step after each full reply.
    steps: list[Step] = []
    for o, d in SESSION:
        steps.extend((o, d[i : i + 1]) for i in range(len(d)))
    bytewise, _ = run(steps)
    strip = lambda recs: [
        {k: v for k, v in r.items() if k not in ("ts", "duration")} for n, r in recs
    ]
    assert strip(bytewise) == strip(whole)
    assert len(stream_c) > 100 and len(stream_s) > 50


def test_pipelined_commands_and_two_messages() -> None:
    steps: list[Step] = [
        (S, b"220 hi\r\n"),
        (C, b"EHLO h\r\n"),
        (S, b"250 ok\r\n"),
        (C, b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nRCPT TO:<bad@x>\r\nDATA\r\n"),
        (S, b"250 ok\r\n250 ok\r\n550 no such user\r\n354 go\r\n"),
        (
            C,
            b"Subject: one\r\n\r\nfirst\r\n.\r\nMAIL FROM:<c@x>\r\nRCPT TO:<d@x>\r\nDATA\r\n",
        ),
        (S, b"250 first queued\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
        (C, b"Subject: two\r\n\r\nsecond\r\n.\r\n"),
        (S, b"250 second queued\r\n"),
        (C, b"QUIT\r\n"),
        (S, b"221 bye\r\n"),
    ]
    records, _ = run(steps)
    got = [
        (
            r["trans_depth"],
            r["ts"],
            r["mailfrom"],
            r["rcptto"],
            r["subject"],
            r["last_reply"],
        )
        for r in smtp(records)
    ]
    assert got == [
        (1, 1.0, "a@x", ["b@x", "bad@x"], "one", "250 first queued"),
        # Pipelined after the first ".", its MAIL starts the second record.
        (2, 6.0, "c@x", ["d@x"], "two", "250 second queued"),
    ]
    assert [f["depth"] for f in files(records)] == [1, 2]


def test_bdat_chunks_are_read_by_size_not_by_dots() -> None:
    part1 = b"Subject: b\r\n\r\nline\r\n.\r\n"  # a lone dot is content in BDAT
    part2 = b"tail\r\n"
    steps: list[Step] = [
        (S, b"220 hi\r\n"),
        (C, b"EHLO h\r\n"),
        (S, b"250 CHUNKING\r\n"),
        (C, b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\n"),
        (S, b"250 ok\r\n250 ok\r\n"),
        (C, b"BDAT %d\r\n" % len(part1) + part1[:5]),
        (C, part1[5:]),
        (S, b"250 chunk\r\n"),
        (C, b"BDAT %d LAST\r\n" % len(part2) + part2 + b"QUIT\r\n"),
        (S, b"250 bdat done\r\n221 bye\r\n"),
    ]
    records, _ = run(steps)
    (rec,) = smtp(records)
    assert (rec["subject"], rec["last_reply"], rec["ts"]) == ("b", "250 bdat done", 1.0)
    body = b"line\r\n.\r\ntail\r\n"
    assert files(records)[0]["sha256"] == hashlib.sha256(body).hexdigest()


def test_auth_exchange_is_not_read_as_commands() -> None:
    steps: list[Step] = [
        (S, b"220 hi\r\n"),
        (C, b"EHLO h\r\nAUTH LOGIN\r\n"),
        (S, b"250 ok\r\n334 VXNlcm5hbWU6\r\n"),
        (C, b"MAIL FROM:<not-a-command@x>\r\n"),  # the "username"
        (S, b"334 UGFzc3dvcmQ6\r\n"),
        (C, base64.b64encode(b"secret") + b"\r\n"),
        (S, b"235 authenticated\r\n"),
        (C, b"QUIT\r\n"),
        (S, b"221 bye\r\n"),
    ]
    records, _ = run(steps)
    assert smtp(records) == []  # no client activity in Zeek's sense


def test_starttls_switches_to_tls() -> None:
    steps: list[Step] = [
        (S, b"220 hi\r\n"),
        (C, b"EHLO h\r\n"),
        (S, b"250-x\r\n250 STARTTLS\r\n"),
        (C, b"STARTTLS\r\n"),
        (S, b"220 2.0.0 Ready to start TLS\r\n"),
        (C, b"\x16\x03\x01\x00\x05hello"),
        (S, b"\x16\x03\x03\x00\x05hello"),
    ]
    records, analyzer = run(steps)
    (rec,) = smtp(records)
    assert (rec["tls"], rec["helo"], rec["last_reply"], rec["fuids"]) == (
        True,
        "h",
        "220 2.0.0 Ready to start TLS",
        [],
    )
    assert analyzer.tls is not None and analyzer.done


def test_refused_starttls_goes_on_in_clear() -> None:
    steps: list[Step] = [
        (S, b"220 hi\r\n"),
        (C, b"EHLO h\r\nSTARTTLS\r\n"),
        (S, b"250 ok\r\n454 TLS not available\r\n"),
        (C, b"MAIL FROM:<a@x>\r\n"),
        (S, b"250 ok\r\n"),
    ]
    records, _ = run(steps)
    (rec,) = smtp(records)
    assert (rec["tls"], rec["mailfrom"], rec["last_reply"]) == (False, "a@x", "250 ok")


def test_refused_data_returns_to_commands() -> None:
    steps: list[Step] = [
        (S, b"220 hi\r\n"),
        (C, b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n"),
        (S, b"250 ok\r\n550 no\r\n554 no valid recipients\r\n"),
        (C, b"MAIL FROM:<c@x>\r\n"),
        (S, b"250 ok\r\n"),
    ]
    records, _ = run(steps)
    assert [(r["mailfrom"], r["last_reply"]) for r in smtp(records)] == [
        ("a@x", "554 no valid recipients"),
        ("c@x", "250 ok"),
    ]
    assert files(records) == []


def test_other_port_starts_at_the_clients_helo() -> None:
    conn = ConnInfo("CTest2", "tcp", "127.0.0.1", 40000, "127.0.0.1", 2525)
    assert SMTPAnalyzer.sniff(conn, False, b"220 mail ready\r\n")
    assert not SMTPAnalyzer.sniff(conn, False, b"SSH-2.0-x\r\n")
    steps: list[Step] = [
        (S, b"220 mail ready\r\n"),
        (C, b"HELO me\r\n"),
        (S, b"250 ok\r\n"),
        (C, b"MAIL FROM:<a@x>\r\n"),
    ]
    records, _ = run(steps, conn)
    assert [(r["ts"], r["helo"], r["last_reply"]) for r in smtp(records)] == [
        (2.0, "me", "250 ok")
    ]


def test_other_port_without_helo_is_dropped() -> None:
    conn = ConnInfo("CTest3", "tcp", "10.0.0.1", 40000, "10.0.0.2", 21)
    steps: list[Step] = [(S, b"220 FTP ready\r\n")] + [(C, b"USER anonymous\r\n")] * 100
    records, analyzer = run(steps, conn)
    assert records == [] and analyzer.done


def test_limits_are_counted() -> None:
    steps: list[Step] = [
        (S, b"220 hi\r\n"),
        (C, b"MAIL FROM:<a@x>\r\n"),
        (C, b"".join(b"RCPT TO:<r%d@x>\r\n" % i for i in range(MAX_ADDRESSES + 5))),
        (C, b"NOOP\r\n" * MAX_PENDING),
        (C, b"X" * MAX_LINE),
        (C, b"X" * MAX_LINE),
        (C, b"X\r\n"),
        (S, b"2" * (MAX_LINE + 10)),
        (S, b"\r\n"),
    ]
    records, analyzer = run(steps)
    (rec,) = smtp(records)
    assert len(rec["rcptto"]) == MAX_ADDRESSES
    assert analyzer.stats["smtp_too_many_rcptto_addresses"] == 5
    assert analyzer.stats["smtp_too_many_pending_commands"] > 1000
    # Held bytes past MAX_LINE without a line end go on as a piece: one of
    # the client's line, one of the server's; the rest ends as a line.
    assert analyzer.stats["smtp_line_too_long"] == 2
    assert analyzer.stats["smtp_bad_reply"] == 1  # the overlong reply's tail


def test_truncated_at_every_byte_never_raises() -> None:
    stream = b"".join(d for o, d in SESSION if o)
    for cut in range(0, len(stream), 3):
        records, _ = run([(S, b"220 x\r\n"), (C, stream[:cut])])
        validate(records)


def test_connection_ending_inside_data_logs_the_message() -> None:
    steps: list[Step] = [
        (S, b"220 hi\r\n"),
        (C, b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n"),
        (S, b"250 ok\r\n250 ok\r\n354 go\r\n"),
        (C, b"Subject: cut\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29y"),
    ]
    records, _ = run(steps)
    (rec,) = smtp(records)
    assert rec["subject"] == "cut"
    assert files(records)[0]["seen_bytes"] == len(b"hello wor")


def test_gap_marks_the_file() -> None:
    out: list[tuple[str, dict[str, Any]]] = []
    analyzer = SMTPAnalyzer(CONN, lambda name, rec: out.append((name, rec)))
    analyzer.data(S, 1.0, b"220 hi\r\n")
    analyzer.data(C, 2.0, b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n")
    analyzer.data(S, 3.0, b"250 ok\r\n250 ok\r\n354 go\r\n")
    analyzer.data(C, 4.0, b"Subject: g\r\n\r\nabc\r\n")
    analyzer.gap(C, 5.0, 1000)
    analyzer.data(C, 6.0, b"def\r\n.\r\n")
    analyzer.end(7.0)
    assert files(out)[0]["missing_bytes"] == 1000
    assert analyzer.stats["smtp_content_gap"] == 1


_TOKENS = [
    b"220 x\r\n", b"250 ok\r\n", b"250-a\r\n", b"354 go\r\n", b"334 x\r\n", b"220 tls\r\n",
    b"EHLO h\r\n", b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<c@d>\r\n", b"DATA\r\n", b".\r\n",
    b"BDAT 5\r\n", b"BDAT 3 LAST\r\n", b"BDAT x\r\n", b"AUTH PLAIN\r\n", b"STARTTLS\r\n",
    b"Content-Type: multipart/mixed; boundary=b\r\n", b"--b\r\n", b"\r\n", b"..x\r\n",
]  # fmt: skip


@FUZZ
@given(
    st.lists(
        st.tuples(st.booleans(), st.sampled_from(_TOKENS) | st.binary(max_size=40)),
        max_size=40,
    )
)
def test_fuzz_never_raises_and_records_validate(steps: list[Step]) -> None:
    records, _ = run(steps)
    validate(records)


def test_gap_in_commands_drops_the_cut_line() -> None:
    out: list[tuple[str, dict[str, Any]]] = []
    analyzer = SMTPAnalyzer(CONN, lambda name, rec: out.append((name, rec)))
    analyzer.data(S, 1.0, b"220 hi\r\n")
    analyzer.data(C, 2.0, b"MAIL FROM:<a@x>\r\nRCPT TO:<lo")
    analyzer.gap(C, 3.0, 20)
    analyzer.data(C, 4.0, b"st@x>\r\nRCPT TO:<b@x>\r\n")
    analyzer.end(5.0)
    assert [r["rcptto"] for r in smtp(out)] == [["b@x"]]


def test_gap_in_a_bdat_chunk_counts_off_its_size() -> None:
    out: list[tuple[str, dict[str, Any]]] = []
    analyzer = SMTPAnalyzer(CONN, lambda name, rec: out.append((name, rec)))
    analyzer.data(S, 1.0, b"220 hi\r\n")
    analyzer.data(
        C, 2.0, b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nBDAT 30 LAST\r\n\r\nabc"
    )
    analyzer.gap(C, 3.0, 25)
    analyzer.data(C, 4.0, b"QUIT\r\n")
    analyzer.data(S, 5.0, b"250 ok\r\n250 ok\r\n250 got it\r\n221 bye\r\n")
    analyzer.end(6.0)
    (rec,) = smtp(out)
    assert rec["last_reply"] == "250 got it"
    assert [(f["seen_bytes"], f["missing_bytes"]) for f in files(out)] == [(3, 25)]


def test_capture_starting_after_the_banner() -> None:
    steps: list[Step] = [
        (C, b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n"),
        (S, b"250 ok\r\n250 ok\r\n354 go\r\n"),
        (C, b"Subject: late\r\n\r\nx\r\n.\r\n"),
        (S, b"250 queued\r\n"),
    ]
    records, _ = run(steps)
    assert [(r["subject"], r["last_reply"]) for r in smtp(records)] == [
        ("late", "250 queued")
    ]


def test_links_from_base64_html_qp_text_and_a_pdf_attachment() -> None:
    from tests.proto.test_links import make_pdf

    pdf = make_pdf("http://pdf-text.example/t", "https://pdf-link.example/l")
    html = base64.encodebytes(
        b'<a href="https://html.example/h?a=1&amp;b=2">x</a>'
    ).replace(b"\n", b"\r\n")
    message = (
        b'Subject: links\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"see http://qp.example/very/long/=\r\npath now\r\n"
        b"--B\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + html
        + b"--B\r\n"
        b'Content-Type: application/pdf; name="a.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + base64.encodebytes(pdf).replace(b"\n", b"\r\n")
        + b"--B--\r\n"
    )
    steps: list[Step] = [
        (S, b"220 hi\r\n"),
        (C, b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n"),
        (S, b"250 ok\r\n250 ok\r\n354 go\r\n"),
        (C, message.replace(b"\r\n.", b"\r\n..") + b".\r\n"),
        (S, b"250 queued\r\n"),
    ]
    records, _ = run(steps)
    (rec,) = smtp(records)
    assert rec["urls"] == [
        "http://qp.example/very/long/path",
        "https://html.example/h?a=1&b=2",
        "https://pdf-link.example/l",
        "http://pdf-text.example/t",
    ]
    pdf_file = files(records)[-1]
    assert (pdf_file["filename"], pdf_file["mime_type"]) == ("a.pdf", "application/pdf")
    assert pdf_file["sha256"] == hashlib.sha256(pdf).hexdigest()
    validate(records)


@FUZZ
@given(st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
def test_fuzz_chunking_gives_the_same_records(cuts: list[int]) -> None:
    whole, _ = run(SESSION)
    steps: list[Step] = []
    for is_orig, data in SESSION:
        points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
        steps.extend((is_orig, data[a:b]) for a, b in itertools.pairwise(points))
    split, _ = run(steps)
    strip = lambda recs: [
        {k: v for k, v in r.items() if k not in ("ts", "duration")} for _, r in recs
    ]
    assert strip(split) == strip(whole)


def test_header_text_as_zeek_writes_it() -> None:
    steps: list[Step] = [
        (S, b"220 hi\r\n"),
        (C, b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n"),
        (S, b"250 ok\r\n250 ok\r\n354 go\r\n"),
        (
            C,
            b"Subject: folded\r\n\twith a tab \xc3\xa9\r\nX-Mailer: m\r\n\r\nbody\r\n.\r\n",
        ),
        (S, b"250 ok\r\n"),
    ]
    (rec,) = smtp(run(steps)[0])
    assert rec["subject"] == "folded\\x09with a tab \\xc3\\xa9"


def test_invalid_transactions_as_zeek_reports_them() -> None:
    steps: list[Step] = [(S, b"220 hi\r\n")]
    steps += [(C, b"RCPT TO:<a@x>\r\n"), (S, b"503 need MAIL\r\n")] * 30
    records, analyzer = run(steps)
    weirds = [
        (r["name"], r.get("addl"), r["source"]) for n, r in records if n == "weird"
    ]
    assert weirds == [
        ("smtp_mail_transaction_invalid", "rcpt to missing mail from", "SMTP"),
        ("smtp_excessive_invalid_mail_transactions", None, "SMTP"),
    ]
    assert analyzer.stats["smtp_mail_transaction_invalid"] == 26  # then it stopped
    validate(records)


def test_quit_ends_the_analysis() -> None:
    out: list[tuple[str, dict[str, Any]]] = []
    analyzer = SMTPAnalyzer(CONN, lambda name, rec: out.append((name, rec)))
    for n, (is_orig, data) in enumerate(SESSION, 1):
        analyzer.data(is_orig, float(n), data)
    assert analyzer.done and len(smtp(out)) == 1  # nothing after 221 matters
