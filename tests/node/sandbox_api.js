// The official mailtrap Node.js SDK against a running Postroom: every testing (sandbox)
// call the sandbox_messages.js script does not make: projects, inboxes and their actions,
// forward, spam score, HTML analysis, HTML source and .eml. Run by
// tests/e2e/test_node_sdk_e2e.py, which reads the JSON printed on stdout and asserts.
//
// Environment: as sandbox_messages.js (POSTROOM_URL, POSTROOM_TOKEN, POSTROOM_ACCOUNT_ID,
// POSTROOM_INBOX_ID, POSTROOM_SUBJECT; NODE_EXTRA_CA_CERTS trusts the test CA).
"use strict";

const { MailtrapClient } = require("./postroom");

const inboxId = Number(process.env.POSTROOM_INBOX_ID);
const subject = process.env.POSTROOM_SUBJECT;
const client = new MailtrapClient({
  token: process.env.POSTROOM_TOKEN,
  accountId: Number(process.env.POSTROOM_ACCOUNT_ID),
  testInboxId: inboxId,
  sandbox: true,
});
const { projects, inboxes, messages } = client.testing;

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
  const project = await step("project.create", () => projects.create("Node project"));
  steps.push(project);
  if (!project.ok) return steps;
  const pid = project.value.id;
  steps.push(await step("project.list", () => projects.getList()));
  steps.push(await step("project.get", () => projects.getById(pid)));
  steps.push(await step("project.update", () => projects.update(pid, "Node renamed")));

  const inbox = await step("inbox.create", () => inboxes.create(pid, "Node inbox"));
  steps.push(inbox);
  if (!inbox.ok) return steps;
  const iid = inbox.value.id;
  steps.push(await step("inbox.list", () => inboxes.getList()));
  steps.push(await step("inbox.get", () => inboxes.getInboxAttributes(iid)));
  steps.push(await step("inbox.update", () => inboxes.updateInbox(iid, { name: "Node box" })));
  steps.push(await step("inbox.clean", () => inboxes.cleanInbox(iid)));
  steps.push(await step("inbox.read", () => inboxes.markAsRead(iid)));
  steps.push(await step("inbox.credentials", () => inboxes.resetCredentials(iid)));
  steps.push(await step("inbox.enable", () => inboxes.enableEmailAddress(iid)));
  steps.push(await step("inbox.username", () => inboxes.resetEmailAddress(iid)));
  steps.push(await step("inbox.delete", () => inboxes.delete(iid)));
  steps.push(await step("project.delete", () => projects.delete(pid)));

  const sent = await step("send", () =>
    client.send({
      from: { email: "node@example.com", name: "Node SDK" },
      to: [{ email: "reader@example.org" }],
      subject,
      text: "Buy viagra now, FREE money!!!",
      html: '<div style="display: flex"><form><input type="text"></form></div>',
    }),
  );
  steps.push(sent);
  if (!sent.ok) return steps;
  const id = Number(sent.value.message_ids[0]);
  steps.push(await step("spam", () => messages.getSpamScore(inboxId, id)));
  steps.push(await step("analysis", () => messages.getHtmlAnalysis(inboxId, id)));
  steps.push(await step("source", () => messages.getMessageHtmlSource(inboxId, id)));
  steps.push(await step("eml", () => messages.getMessageAsEml(inboxId, id)));
  steps.push(await step("forward", () => messages.forward(inboxId, id, "qa@example.org")));
  return steps;
}

main().then(
  (steps) => process.stdout.write(JSON.stringify(steps)),
  (error) => {
    process.stderr.write(String(error && error.stack ? error.stack : error));
    process.exit(1);
  },
);
