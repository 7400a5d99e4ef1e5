"""Notifications outside the console: WeCom, DingTalk, Feishu/Lark, e-mail, JSON webhooks.

Pure (time is an argument, no I/O): ``config`` (the ``notifications:`` YAML section),
``routing`` (which routes an alert matches, quiet hours, escalation steps, back-off, digest
windows), ``messages`` (what a notice says) and ``signing`` (DingTalk, Feishu and webhook
signatures). I/O: ``outbox`` (the notices table, written in the alert's own transaction;
claiming and marking), ``schedule`` (escalations and daily digests from the maintenance loop),
``channels`` (the HTTP clients, the only httpx importer), ``mail`` (SMTP) and ``sender``
(``NoticeSender``, the delivery thread, and building channels from config). See
docs/decisions/0011-notification-channels.md.
"""
