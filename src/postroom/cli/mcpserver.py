"""``postroom mcp``: a Model Context Protocol server that lets an AI assistant use Postroom.

Every tool is a call to Postroom's HTTP API through the shared client (cli/client.py),
configured by ``POSTROOM_URL`` and ``POSTROOM_TOKEN`` (or ``postroom remote login``). The
tools offered follow the token's scopes (``GET /api/token``), so an assistant is never
shown a tool that would be refused:

- every token: read sandbox messages, search email logs, read stats, templates,
  suppressions and domain status;
- ``send`` (or ``admin``): send email, and send a test into a sandbox inbox and read it back;
- ``admin``: create, update and delete templates; add and remove suppressions.

Runs over stdio (what desktop assistants start) or streamable HTTP (``--transport http``,
on loopback by default).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from postroom import __version__
from postroom.cli.client import PostroomClient, RemoteError
from postroom.cli.links import links_of

INSTRUCTIONS = """\
Postroom is a self-hosted email API (compatible with Mailtrap's Email API). Use these tools
to send email, check that an email looks right before it goes to real people, and answer
questions about what was sent.

- To check what an email looks like, use send_test_email: it is captured in a sandbox
  inbox (never delivered) and returned with its text, HTML, links and attachments.
- send_email delivers for real (unless the server runs in sandbox mode): only use it when
  the user asked to send to those recipients.
- Questions like "did my password reset reach bob@example.com?" are answered by
  search_email_logs (status, events) and then get_email_log for one message's events.
- Dates are YYYY-MM-DD; times are ISO 8601 in UTC.
"""

READ = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
WRITE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=False)
DELETE = ToolAnnotations(readOnlyHint=False, destructiveHint=True, openWorldHint=False)
SEND = ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=True)

# Bodies are cut to this many characters in tool answers: an assistant's context is small.
BODY_LIMIT = 20_000

Email = Annotated[str, Field(description="An email address, e.g. user@example.com.")]
Recipients = Annotated[
    list[str], Field(description="Recipient addresses (at least one).", min_length=1)
]


def _mail(
    from_email: str,
    to: list[str],
    subject: str | None,
    text: str | None,
    html: str | None,
    from_name: str | None = None,
    cc: list[str] | None = None,
    bcc: list[str] | None = None,
    category: str | None = None,
    template_uuid: str | None = None,
    template_variables: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The contract's send body from flat arguments."""
    sender: dict[str, str] = {"email": from_email}
    if from_name:
        sender["name"] = from_name
    body: dict[str, Any] = {"from": sender, "to": [{"email": a} for a in to]}
    optional = {
        "cc": [{"email": a} for a in cc or []],
        "bcc": [{"email": a} for a in bcc or []],
        "subject": subject,
        "text": text,
        "html": html,
        "category": category,
        "template_uuid": template_uuid,
        "template_variables": template_variables,
    }
    body.update({k: v for k, v in optional.items() if v})
    return body


def _cut(value: str) -> str:
    if len(value) <= BODY_LIMIT:
        return value
    return value[:BODY_LIMIT] + f"\n… [{len(value) - BODY_LIMIT} more characters]"


def read_message(client: PostroomClient, inbox_id: int, message_id: int) -> dict[str, Any]:
    """One sandbox message with its bodies, links, attachments and headers."""
    row = client.message(inbox_id, message_id)
    text = client.message_body(inbox_id, message_id, "txt") if row.get("text_body_size") else ""
    html = (
        client.message_body(inbox_id, message_id, "htmlsource") if row.get("html_body_size") else ""
    )
    headers = client.message_headers(inbox_id, message_id).get("headers", {})
    return {
        "id": row["id"],
        "inbox_id": row["inbox_id"],
        "subject": row["subject"],
        "from": row["from_email"],
        "to": row["to_email"],
        "sent_at": row["sent_at"],
        "size": row.get("human_size"),
        "text": _cut(text),
        "html": _cut(html),
        "links": links_of(html, text),
        "attachments": [
            {
                "filename": a["filename"],
                "content_type": a["content_type"],
                "size": a["attachment_size"],
            }
            for a in client.attachments(inbox_id, message_id)
        ],
        "headers": headers,
    }


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "inbox_id": row["inbox_id"],
        "subject": row["subject"],
        "from": row["from_email"],
        "to": row["to_email"],
        "sent_at": row["sent_at"],
        "is_read": row["is_read"],
    }


F = TypeVar("F", bound=Callable[..., Any])


def _explained(fn: F) -> F:
    """Let the assistant read why a call failed: the API's answer, or a timeout, becomes
    the tool error's text (other exceptions are reported without details)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RemoteError as exc:
            status = f"HTTP {exc.status}: " if exc.status else ""
            raise ToolError(f"{status}{exc.message}") from None
        except (TimeoutError, ValueError) as exc:
            raise ToolError(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def build_server(client: PostroomClient, scopes: set[str]) -> MCPServer:
    """The MCP server with the tools ``scopes`` allow."""
    server = MCPServer(
        name="postroom",
        title="Postroom",
        instructions=INSTRUCTIONS,
        version=__version__,
    )
    can_send = bool(scopes & {"send", "admin"})
    admin = "admin" in scopes

    # --- reading --------------------------------------------------------------------

    @server.tool(annotations=READ)
    @_explained
    def list_sandbox_inboxes() -> list[dict[str, Any]]:
        """List the sandbox (test) inboxes: id, name and message count. Mail sent with
        send_test_email, or sent while the server delivers in sandbox mode, lands in an
        inbox instead of reaching anyone."""
        return [
            {
                "id": i["id"],
                "name": i["name"],
                "emails_count": i.get("emails_count"),
                "emails_unread_count": i.get("emails_unread_count"),
            }
            for i in client.inboxes()
        ]

    @server.tool(annotations=READ)
    @_explained
    def list_sandbox_messages(
        inbox_id: Annotated[
            int | None, Field(description="Inbox id; default: the default sandbox inbox.")
        ] = None,
        search: Annotated[
            str | None, Field(description="Only messages whose subject/from/to contain this.")
        ] = None,
    ) -> list[dict[str, Any]]:
        """List captured messages of a sandbox inbox, newest first (one page, up to 30).
        Use read_sandbox_message with an id from here to see a message's content."""
        inbox = inbox_id or client.default_inbox_id()
        return [_summary(r) for r in client.messages(inbox, search=search)]

    @server.tool(annotations=READ)
    @_explained
    def read_sandbox_message(
        message_id: Annotated[int, Field(description="The sandbox message id.")],
        inbox_id: Annotated[
            int | None, Field(description="Its inbox; default: the default sandbox inbox.")
        ] = None,
    ) -> dict[str, Any]:
        """Read one captured sandbox message: subject, from, to, text body, HTML body,
        the links it contains, its attachments (names, types, sizes) and headers."""
        return read_message(client, inbox_id or client.default_inbox_id(), message_id)

    @server.tool(annotations=READ)
    @_explained
    def search_email_logs(
        to: Annotated[str | None, Field(description="Recipient address (exact).")] = None,
        from_email: Annotated[str | None, Field(description="Sender address (exact).")] = None,
        subject_contains: Annotated[
            str | None, Field(description="Text the subject contains.")
        ] = None,
        status: Annotated[
            str | None,
            Field(description="delivered, not_delivered, enqueued or opted_out."),
        ] = None,
        category: Annotated[str | None, Field(description="The message's category.")] = None,
        sent_after: Annotated[
            str | None, Field(description="ISO 8601 time, e.g. 2026-01-31T00:00:00Z.")
        ] = None,
        sent_before: Annotated[str | None, Field(description="ISO 8601 time.")] = None,
        cursor: Annotated[
            str | None, Field(description="next_page_cursor of a previous answer.")
        ] = None,
    ) -> dict[str, Any]:
        """Search the log of sent email, newest first (up to 50 a page). Each entry has
        message_id, status, subject, from, to, sent_at, category and open/click counts;
        use get_email_log with a message_id for its delivery events."""
        filters: dict[str, Any] = {}
        if to:
            filters["to"] = {"ci_equal": to}
        if from_email:
            filters["from"] = {"ci_equal": from_email}
        if subject_contains:
            filters["subject"] = {"ci_contain": subject_contains}
        if status:
            filters["status"] = {"equal": status}
        if category:
            filters["category"] = {"equal": category}
        if sent_after:
            filters["sent_after"] = sent_after
        if sent_before:
            filters["sent_before"] = sent_before
        return client.logs(filters=filters, search_after=cursor)

    @server.tool(annotations=READ)
    @_explained
    def get_email_log(
        message_id: Annotated[str, Field(description="message_id from send or the logs.")],
    ) -> dict[str, Any]:
        """One sent message's log: status, recipient, and its events (delivery, bounce,
        open, click, spam complaint, unsubscribe…) with times and the receiving server's
        answer."""
        return client.log(message_id)

    @server.tool(annotations=READ)
    @_explained
    def get_sending_stats(
        start_date: Annotated[
            str | None, Field(description="YYYY-MM-DD; default: 30 days ago.")
        ] = None,
        end_date: Annotated[str | None, Field(description="YYYY-MM-DD; default: today.")] = None,
        group_by: Annotated[
            str | None,
            Field(
                description="None for totals, or domains, categories, "
                "email_service_providers or date."
            ),
        ] = None,  # fmt: skip
    ) -> Any:
        """Sending statistics for a date range: delivered, bounced, opened, clicked and
        spam counts and rates, in total or grouped."""
        today = datetime.now(UTC).date()
        start = start_date or (today - timedelta(days=30)).isoformat()
        end = end_date or today.isoformat()
        for value in (start, end):
            date.fromisoformat(value)  # a clear ValueError (a tool error) for a bad date
        return client.stats(start, end, group_by)

    @server.tool(annotations=READ)
    @_explained
    def list_templates() -> list[dict[str, Any]]:
        """List stored email templates: id, uuid (what a send uses), name, category and
        subject. Bodies use Handlebars variables like {{name}}."""
        return [
            {k: t.get(k) for k in ("id", "uuid", "name", "category", "subject", "version")}
            for t in client.templates()
        ]

    @server.tool(annotations=READ)
    @_explained
    def get_template(
        template_id: Annotated[int, Field(description="The template's id.")],
    ) -> dict[str, Any]:
        """One template with its HTML and text bodies."""
        return client.template(template_id)

    @server.tool(annotations=READ)
    @_explained
    def preview_template(
        template_id: Annotated[int, Field(description="The template's id.")],
        variables: Annotated[
            dict[str, Any], Field(description="Values for the template's {{variables}}.")
        ],
    ) -> dict[str, Any]:
        """Render a template with variables without sending anything: the subject, HTML
        and text a recipient would get."""
        return client.preview_template(template_id, variables)

    @server.tool(annotations=READ)
    @_explained
    def list_suppressions(
        email: Annotated[str | None, Field(description="Only this address.")] = None,
    ) -> list[dict[str, Any]]:
        """List suppressed addresses (hard bounces, spam complaints, unsubscribes, manual):
        mail to them is not sent. Each has an id, email, type and when it was added."""
        return client.suppressions(email)

    @server.tool(annotations=READ)
    @_explained
    def get_domain_status(
        domain: Annotated[
            str | None, Field(description="Domain name or id; default: every domain.")
        ] = None,
    ) -> list[dict[str, Any]]:
        """Sending domains and their DNS verification: whether each record (SPF, DKIM,
        DMARC, return path) is verified, the values to publish, and compliance status."""
        rows = [client.find_domain(domain)] if domain else client.domains()
        return [
            {
                "id": d.get("id"),
                "domain_name": d.get("domain_name"),
                "dns_verified": d.get("dns_verified"),
                "compliance_status": d.get("compliance_status"),
                "dns_records": d.get("dns_records"),
            }
            for d in rows
        ]

    # --- sending --------------------------------------------------------------------

    if can_send:

        @server.tool(annotations=SEND)
        @_explained
        def send_email(
            from_email: Email,
            to: Recipients,
            subject: Annotated[
                str | None, Field(description="Required unless template_uuid is given.")
            ] = None,
            text: Annotated[str | None, Field(description="Plain-text body.")] = None,
            html: Annotated[str | None, Field(description="HTML body.")] = None,
            from_name: Annotated[str | None, Field(description="Sender display name.")] = None,
            cc: Annotated[list[str] | None, Field(description="Cc addresses.")] = None,
            bcc: Annotated[list[str] | None, Field(description="Bcc addresses.")] = None,
            category: Annotated[str | None, Field(description="A label for stats.")] = None,
            template_uuid: Annotated[
                str | None, Field(description="Send a stored template (see list_templates).")
            ] = None,
            template_variables: Annotated[
                dict[str, Any] | None, Field(description="Values for the template.")
            ] = None,
        ) -> dict[str, Any]:
            """Send an email to real recipients. Give subject and text and/or html, or a
            template_uuid with template_variables. The sender's domain must be a verified
            sending domain. Answers {success, message_ids}; check delivery with
            get_email_log. Use send_test_email instead to only preview an email."""
            return client.send(
                _mail(from_email, to, subject, text, html, from_name, cc, bcc, category,
                      template_uuid, template_variables)
            )  # fmt: skip

        @server.tool(annotations=WRITE)
        @_explained
        def send_test_email(
            from_email: Email,
            to: Recipients,
            subject: Annotated[
                str | None, Field(description="Required unless template_uuid is given.")
            ] = None,
            text: Annotated[str | None, Field(description="Plain-text body.")] = None,
            html: Annotated[str | None, Field(description="HTML body.")] = None,
            template_uuid: Annotated[
                str | None, Field(description="Test a stored template.")
            ] = None,
            template_variables: Annotated[
                dict[str, Any] | None, Field(description="Values for the template.")
            ] = None,
            inbox_id: Annotated[
                int | None, Field(description="Sandbox inbox; default: the default one.")
            ] = None,
        ) -> dict[str, Any]:
            """Send an email into a sandbox inbox (nobody receives it) and return it as
            captured: subject, text, HTML, links, attachments and headers. Use it to check
            how an email or a template renders before sending it for real."""
            inbox = inbox_id or client.default_inbox_id()
            sent = client.send_to_sandbox(
                inbox,
                _mail(from_email, to, subject, text, html, template_uuid=template_uuid,
                      template_variables=template_variables),
            )  # fmt: skip
            # A sandbox send captures at once and answers the captured message's id.
            ids = sent.get("message_ids") or []
            if not ids:
                raise ToolError(f"the sandbox accepted nothing: {sent}")
            return read_message(client, inbox, int(ids[0]))

    # --- managing -------------------------------------------------------------------

    if admin:

        @server.tool(annotations=WRITE)
        @_explained
        def create_template(
            name: Annotated[str, Field(description="A name for people.")],
            subject: Annotated[str, Field(description="Subject; may use {{variables}}.")],
            body_html: Annotated[str | None, Field(description="HTML body (Handlebars).")] = None,
            body_text: Annotated[str | None, Field(description="Text body (Handlebars).")] = None,
            category: Annotated[str, Field(description="A label for stats.")] = "General",
        ) -> dict[str, Any]:
            """Store a new email template; answers it with its uuid (used to send it)."""
            fields = {"name": name, "subject": subject, "category": category}
            fields.update({k: v for k, v in {"body_html": body_html,
                           "body_text": body_text}.items() if v is not None})  # fmt: skip
            return client.create_template(fields)

        @server.tool(annotations=WRITE)
        @_explained
        def update_template(
            template_id: Annotated[int, Field(description="The template's id.")],
            name: Annotated[str | None, Field(description="New name.")] = None,
            subject: Annotated[str | None, Field(description="New subject.")] = None,
            body_html: Annotated[str | None, Field(description="New HTML body.")] = None,
            body_text: Annotated[str | None, Field(description="New text body.")] = None,
            category: Annotated[str | None, Field(description="New category.")] = None,
        ) -> dict[str, Any]:
            """Change a template (only the fields given); a new version is saved."""
            fields = {
                k: v
                for k, v in {"name": name, "subject": subject, "body_html": body_html,
                             "body_text": body_text, "category": category}.items()
                if v is not None
            }  # fmt: skip
            return client.update_template(template_id, fields)

        @server.tool(annotations=DELETE)
        @_explained
        def delete_template(
            template_id: Annotated[int, Field(description="The template's id.")],
        ) -> str:
            """Delete a template. Sends that use its uuid fail afterwards: ask the user first."""
            client.delete_template(template_id)
            return f"template {template_id} deleted"

        @server.tool(annotations=WRITE)
        @_explained
        def add_suppression(
            email: Email,
            sending_stream: Annotated[
                str, Field(description="transactional or bulk: the stream it applies to.")
            ] = "transactional",
        ) -> dict[str, Any]:
            """Suppress an address on a stream: no more mail of that stream is sent to it
            until the suppression is removed."""
            return client.add_suppression(email, sending_stream=sending_stream)

        @server.tool(annotations=DELETE)
        @_explained
        def remove_suppression(
            suppression_id: Annotated[str, Field(description="id from list_suppressions.")],
        ) -> str:
            """Remove a suppression so the address can receive mail again."""
            client.remove_suppression(suppression_id)
            return f"suppression {suppression_id} removed"

    return server


def run(client: PostroomClient, transport: str, host: str, port: int) -> None:
    """Serve until the client goes away (stdio) or the process is stopped (HTTP)."""
    scopes = set(client.whoami().get("scopes", []))
    server = build_server(client, scopes)
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=host, port=port)
