"""Email over SMTP (a real client: the standard library's smtplib, in a worker thread).

The bridge records every notification before it goes out (``notifications`` table, keyed
so that none is sent twice, even across a restart), then calls :meth:`Mailer.send`; a
failure is retried with a doubling delay up to ``notify_max_attempts``.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid


@dataclass(frozen=True, slots=True)
class SmtpParams:
    host: str
    port: int = 25
    user: str = ""
    password: str = ""
    starttls: bool = False
    sender: str = "classroom@localhost"
    timeout_s: float = 15.0


class Mailer:
    def __init__(self, params: SmtpParams) -> None:
        self.params = params

    def send(self, to: str, subject: str, body: str) -> None:
        """Send one plain-text email (blocking: call it from a worker thread); raises
        ``OSError``/``smtplib.SMTPException`` on failure."""
        p = self.params
        msg = EmailMessage()
        msg["From"] = p.sender
        msg["To"] = to
        msg["Subject"] = subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain=p.sender.rpartition("@")[2] or "localhost")
        msg.set_content(body)
        with smtplib.SMTP(p.host, p.port, timeout=p.timeout_s) as smtp:
            if p.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if p.user:
                smtp.login(p.user, p.password)
            smtp.send_message(msg)
