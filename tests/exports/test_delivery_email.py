"""E-mail delivery through a real SMTP server on loopback (aiosmtpd), plain and with STARTTLS + login."""

from __future__ import annotations

import csv
import email
import email.policy
import io
import os
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from reporting.delivery import send_email
from reporting.delivery_settings import DeliveryConfigError, DeliverySettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        self.sessions_with_tls: list[bool] = []
        self.logins: list[str] = []
        self.fail_next = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        if self.fail_next:
            self.fail_next -= 1
            return "451 4.3.0 try again later"
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        self.sessions_with_tls.append(session.ssl is not None)
        return "250 OK"


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


def settings_for(port: int, **extra: str) -> DeliverySettings:
    env = {
        "STEPWISE_SMTP_HOST": "127.0.0.1",
        "STEPWISE_SMTP_PORT": str(port),
        "STEPWISE_SMTP_STARTTLS": "false",
        "STEPWISE_SMTP_FROM": "stepwise@example.test",
        "STEPWISE_SMTP_TO": "marketing@example.test, growth@example.test",
        "STEPWISE_DELIVERY_BACKOFF_SECONDS": "0.01",
        "STEPWISE_SMTP_TIMEOUT": "10",
        **extra,
    }
    return DeliverySettings.from_env(env)


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def test_email_arrives_with_body_attachments_and_period_subject(smtp_server, fixture_export):
    inbox, port = smtp_server
    outcome = send_email(fixture_export, settings_for(port))
    assert outcome.ok and outcome.attempts == 1, outcome
    assert len(inbox.messages) == 1
    recipients, raw = inbox.messages[0]
    assert sorted(recipients) == ["growth@example.test", "marketing@example.test"]
    msg = parse(raw)
    assert "2026-W47" in msg["Subject"] and "16–22 Nov 2026" in msg["Subject"]
    assert "[sandbox data]" in msg["Subject"]
    assert msg["From"] == "stepwise@example.test"

    html = msg.get_body(preferencelist=("html",)).get_content()
    text = msg.get_body(preferencelist=("plain",)).get_content()
    h = fixture_export.headline
    for value in (h["sessions"], h["micro_conversions"], h["macro_conversions"]):
        assert f"{value:,.0f}" in html and f"{value:,.0f}" in text
    assert "Sandbox data" in html and "SANDBOX DATA" in text
    assert 'id="email-digest"' in html and "<svg" not in html  # mail clients drop inline SVG

    attachments = {part.get_filename(): part for part in msg.iter_attachments()}
    assert set(attachments) == {p.name for p in fixture_export.files}
    for path in fixture_export.files:
        assert attachments[path.name].get_content_type() != "application/octet-stream" or path.suffix not in (
            ".csv",
            ".html",
        )
        payload = attachments[path.name].get_payload(decode=True)
        assert payload == path.read_bytes(), path.name
    assert attachments["summary.html"].get_content_type() == "text/html"
    assert attachments["funnel_daily.parquet"].get_content_type() == "application/vnd.apache.parquet"
    funnel_rows = list(csv.DictReader(io.StringIO(attachments["funnel_daily.csv"].get_content())))
    assert funnel_rows and {r["date"] for r in funnel_rows} <= {f"2026-11-{d}" for d in range(16, 23)}


def test_attachments_over_the_size_limit_are_named_not_sent(smtp_server, fixture_export):
    inbox, port = smtp_server
    outcome = send_email(fixture_export, settings_for(port, STEPWISE_SMTP_MAX_ATTACHMENT_MB="0"))
    assert outcome.ok
    msg = parse(inbox.messages[0][1])
    assert not list(msg.iter_attachments())
    text = msg.get_body(preferencelist=("plain",)).get_content()
    assert (
        "Not attached" in text and "summary.html" in text and os.path.abspath(fixture_export.out_dir) in text
    )


def test_a_refusing_server_is_retried_then_succeeds(smtp_server, fixture_export):
    inbox, port = smtp_server
    inbox.fail_next = 2
    outcome = send_email(fixture_export, settings_for(port))
    assert outcome.ok and outcome.attempts == 3
    assert len(inbox.messages) == 1


def test_an_unreachable_server_fails_after_three_attempts(fixture_export):
    outcome = send_email(fixture_export, settings_for(free_port()))
    assert not outcome.ok and outcome.attempts == 3
    assert "after 3 attempts" in outcome.detail


@pytest.fixture
def tls_smtp_server(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"stepwise" and auth_data.password == b"s3cret-pass"
        if ok:
            inbox.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)

    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_require_tls=True,
        # smtplib falls back from PLAIN to LOGIN after a refusal; one mechanism keeps the refusal final.
        auth_exclude_mechanism=["LOGIN"],
    )
    controller.start()
    try:
        yield inbox, controller.port, cert
    finally:
        controller.stop()


def test_starttls_and_login_when_configured(tls_smtp_server, fixture_export):
    inbox, port, cert = tls_smtp_server
    settings = settings_for(
        port,
        STEPWISE_SMTP_STARTTLS="true",
        STEPWISE_SMTP_USER="stepwise",
        STEPWISE_SMTP_PASSWORD="s3cret-pass",
        STEPWISE_SMTP_CA_FILE=str(cert),
    )
    outcome = send_email(fixture_export, settings)
    assert outcome.ok, outcome
    assert inbox.logins == ["stepwise"] and inbox.sessions_with_tls == [True]
    assert "STARTTLS, login" in outcome.target and "s3cret" not in repr(outcome) + repr(settings)


def test_a_wrong_password_is_not_retried_and_not_shown(tls_smtp_server, fixture_export):
    inbox, port, cert = tls_smtp_server
    settings = settings_for(
        port,
        STEPWISE_SMTP_STARTTLS="true",
        STEPWISE_SMTP_USER="stepwise",
        STEPWISE_SMTP_PASSWORD="wrong-pass",
        STEPWISE_SMTP_CA_FILE=str(cert),
    )
    outcome = send_email(fixture_export, settings)
    assert not outcome.ok and outcome.attempts == 1 and "login refused" in outcome.detail
    assert "wrong-pass" not in str(outcome.as_metadata()) and not inbox.messages


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STEPWISE_SMTP_HOST": "mail.example.com"}, "STEPWISE_SMTP_TO is empty"),
        (
            {
                "STEPWISE_SMTP_HOST": "mail.example.com",
                "STEPWISE_SMTP_TO": "a@b.test",
                "STEPWISE_SMTP_USER": "u@b.test",
            },
            "without STEPWISE_SMTP_PASSWORD",
        ),
        (
            {
                "STEPWISE_SMTP_HOST": "mail.example.com",
                "STEPWISE_SMTP_TO": "a@b.test",
                "STEPWISE_SMTP_USER": "u@b.test",
                "STEPWISE_SMTP_PASSWORD": "x",
                "STEPWISE_SMTP_STARTTLS": "false",
                "STEPWISE_SMTP_PORT": "25",
            },
            "refusing to send the password in clear text",
        ),
        (
            {
                "STEPWISE_SMTP_HOST": "mail.example.com",
                "STEPWISE_SMTP_TO": "a@b.test",
                "STEPWISE_SMTP_PORT": "smtp",
            },
            "STEPWISE_SMTP_PORT",
        ),
        (
            {
                "STEPWISE_SMTP_HOST": "mail.example.com",
                "STEPWISE_SMTP_TO": "a@b.test",
                "STEPWISE_SMTP_STARTTLS": "maybe",
            },
            "STEPWISE_SMTP_STARTTLS",
        ),
        ({"STEPWISE_SLACK_WEBHOOK_URL": "ftp://hooks.slack.com/x"}, "STEPWISE_SLACK_WEBHOOK_URL"),
        ({"STEPWISE_DELIVERY_ATTEMPTS": "0"}, "STEPWISE_DELIVERY_ATTEMPTS"),
    ],
)
def test_bad_delivery_settings_fail_with_one_clear_message(env, message):
    with pytest.raises(DeliveryConfigError, match=message):
        DeliverySettings.from_env(env)


def test_defaults_without_any_delivery_configured():
    settings = DeliverySettings.from_env({})
    assert settings.configured == [] and settings.attempts == 3
    starttls = DeliverySettings.from_env(
        {
            "STEPWISE_SMTP_HOST": "mail.example.com",
            "STEPWISE_SMTP_TO": "a@b.test",
            "STEPWISE_SMTP_FROM": "s@b.test",
        }
    ).email
    assert starttls is not None and starttls.port == 587 and starttls.starttls


def test_summary_html_attachment_is_the_written_report(smtp_server, fixture_export):
    inbox, port = smtp_server
    send_email(fixture_export, settings_for(port))
    msg = parse(inbox.messages[0][1])
    report = next(p for p in msg.iter_attachments() if p.get_filename() == "summary.html")
    assert report.get_content() == Path(fixture_export.report_path).read_text(encoding="utf-8")
