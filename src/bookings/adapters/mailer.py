"""SMTP delivery with aiosmtplib; the outbox worker is the only caller."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib

from bookings.settings import Settings


class SmtpMailer:
    def __init__(self, settings: Settings, timeout_s: float = 5.0) -> None:
        self._host = settings.smtp_host
        self._port = settings.smtp_port
        self._sender = settings.mail_from
        self._timeout_s = timeout_s

    async def send(self, *, recipient: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = recipient
        message["Subject"] = subject
        message.set_content(body)
        await aiosmtplib.send(
            message,
            hostname=self._host,
            port=self._port,
            timeout=self._timeout_s,
            start_tls=False,
            use_tls=False,
        )
