"""SMTP submission: applications send through Postroom as through a hosted provider's relay.

Listeners (aiosmtpd) on a STARTTLS port and an implicit-TLS port per stream
(:mod:`.server`); clients log in with user ``api`` and an API token (or a sandbox inbox's
SMTP credentials), and every message goes through the same ``accept_message()`` as the
HTTP API (:mod:`.handler`). Failed logins lock the failing credentials at their client
address and slow the address, never refusing a correct credential (:mod:`.throttle`).
"""
