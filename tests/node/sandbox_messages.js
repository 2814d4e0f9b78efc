// The official mailtrap Node.js SDK against a running Postroom: a sandbox send, then every
// Messages and Attachments call on the message it captured. Run by
// tests/e2e/test_node_sdk_e2e.py, which reads the JSON printed on stdout and asserts.
//
// Environment: POSTROOM_URL (https://127.0.0.1:PORT), POSTROOM_TOKEN, POSTROOM_ACCOUNT_ID,
// POSTROOM_INBOX_ID, POSTROOM_SUBJECT; NODE_EXTRA_CA_CERTS trusts the test CA.
"use strict";

const { MailtrapClient, run } = require("./postroom");

const inboxId = Number(process.env.POSTROOM_INBOX_ID);
const subject = process.env.POSTROOM_SUBJECT;
const client = new MailtrapClient({
  token: process.env.POSTROOM_TOKEN,
  accountId: Number(process.env.POSTROOM_ACCOUNT_ID),
  testInboxId: inboxId,
  sandbox: true,
});
const messages = client.testing.messages;
const attachments = client.testing.attachments;

// Each step's outcome: its value, or the error the SDK raised (status and message).
async function step(name, call) {
  try {
    return { name, ok: true, value: await call() };
  } catch (error) {
    const status = error.response ? error.response.status : null;
    return { name, ok: false, status, error: String(error.message || error) };
  }
}

async function main() {
  const steps = [];
  const sent = await step("send", () =>
    client.send({
      from: { email: "node@example.com", name: "Node SDK" },
      to: [{ email: "reader@example.org" }],
      subject,
      text: "Plain body from Node",
      html: "<p>HTML body from <b>Node</b></p>",
      attachments: [
        { filename: "report.txt", content: Buffer.from("attached text\n"), type: "text/plain" },
      ],
    }),
  );
  steps.push(sent);
  if (!sent.ok) return steps;

  const listed = await step("list", () => messages.get(inboxId, { search: subject }));
  steps.push(listed);
  if (!listed.ok || listed.value.length !== 1) return steps;
  // The id exactly as JavaScript holds it: a number parsed by JSON.parse.
  const id = listed.value[0].id;
  steps.push({ name: "id", ok: true, value: { id: String(id), safe: Number.isSafeInteger(id) } });

  steps.push(await step("show", () => messages.showEmailMessage(inboxId, id)));
  const list = await step("attachments", () => attachments.getList(inboxId, id));
  steps.push(list);
  if (list.ok && list.value.length > 0) {
    steps.push(await step("attachment", () => attachments.get(inboxId, id, list.value[0].id)));
  }
  steps.push(await step("text", () => messages.getTextMessage(inboxId, id)));
  steps.push(await step("html", () => messages.getHtmlMessage(inboxId, id)));
  steps.push(await step("raw", () => messages.getRawMessage(inboxId, id)));
  steps.push(await step("headers", () => messages.getMailHeaders(inboxId, id)));
  steps.push(await step("read", () => messages.updateMessage(inboxId, id, { isRead: true })));
  steps.push(await step("delete", () => messages.deleteMessage(inboxId, id)));
  steps.push(await step("gone", () => messages.showEmailMessage(inboxId, id)));
  return steps;
}

run(main);
