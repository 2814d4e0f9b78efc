// The official mailtrap Node.js SDK against a running Postroom: every call outside the
// testing (sandbox) API and the contacts API, which other scripts make. Run by
// tests/e2e/test_node_sdk_general_e2e.py, which reads the JSON printed on stdout (one
// step per call: its value, or the error the SDK raised) and asserts.
//
// Two phases, chosen by POSTROOM_PHASE:
// - "main": accounts, billing, API tokens, sub-accounts, account accesses and permissions,
//   sending domains and company info, templates, suppressions, tracking opt-outs,
//   webhooks, sending (transactional, batch, bulk), email logs and stats, the inbound
//   folder and inbox it leaves for the next phase, and email campaigns;
// - "inbound": after the test mailed two messages of one thread to that inbox
//   (POSTROOM_INBOUND_FOLDER, POSTROOM_INBOUND_INBOX): inbound messages and threads,
//   reply, reply-all and forward, then the deletions.
//
// Environment: POSTROOM_URL, POSTROOM_BULK_URL, POSTROOM_TOKEN, POSTROOM_ACCOUNT_ID,
// POSTROOM_ORGANIZATION_ID, POSTROOM_VIEWER (a user's email), POSTROOM_CATEGORY;
// NODE_EXTRA_CA_CERTS trusts the test CA.
"use strict";

const { MailtrapClient, run } = require("./postroom");

const token = process.env.POSTROOM_TOKEN;
const accountId = Number(process.env.POSTROOM_ACCOUNT_ID);
const category = process.env.POSTROOM_CATEGORY;
const client = new MailtrapClient({
  token,
  accountId,
  organizationId: Number(process.env.POSTROOM_ORGANIZATION_ID),
});
const bulk = new MailtrapClient({ token, accountId, bulk: true });

async function step(steps, name, call) {
  let outcome;
  try {
    outcome = { name, ok: true, value: await call() };
  } catch (error) {
    const status = error.response ? error.response.status : null;
    outcome = { name, ok: false, status, error: String(error.message || error) };
  }
  steps.push(outcome);
  return outcome;
}

// Logs and stats are folded by the server's scheduler: ask again until `done` holds.
async function eventually(call, done, seconds = 20) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await call();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

async function accountsAndTokens(steps) {
  const { general, organizations } = client;
  await step(steps, "accounts.list", () => general.accounts.getAllAccounts());
  await step(steps, "billing.usage", () => general.billing.getCurrentBillingCycleUsage());
  const tokens = general.apiTokens;
  const made = await step(steps, "tokens.create", () =>
    tokens.create({
      name: "node token",
      resources: [{ resource_type: "account", resource_id: accountId, access_level: 10 }],
    }),
  );
  if (made.ok) {
    const id = made.value.id;
    await step(steps, "tokens.list", () => tokens.getList());
    await step(steps, "tokens.get", () => tokens.get(id));
    await step(steps, "tokens.reset", () => tokens.reset(id));
    await step(steps, "tokens.delete", () => tokens.delete(id));
    await step(steps, "tokens.after", () => tokens.getList());
  }
  await step(steps, "subaccounts.create", () =>
    organizations.subAccounts.create({ name: "Node staging" }),
  );
  await step(steps, "subaccounts.list", () => organizations.subAccounts.getList());
}

async function accesses(steps, domainId) {
  const { accountAccesses, permissions } = client.general;
  const listed = await step(steps, "accesses.list", () => accountAccesses.listAccountAccesses());
  const viewer =
    listed.ok && listed.value.find((a) => a.specifier.email === process.env.POSTROOM_VIEWER);
  if (!viewer) return;
  const project = await step(steps, "accesses.project", () =>
    client.testing.projects.create("Shared from Node"),
  );
  if (!project.ok) return;
  await step(steps, "permissions.bulk", () =>
    permissions.bulkPermissionsUpdate(viewer.id, [
      { resourceId: String(project.value.id), resourceType: "project", accessLevel: "admin" },
      { resourceId: String(domainId), resourceType: "sending_domain", accessLevel: "viewer" },
    ]),
  );
  await step(steps, "accesses.by_project", () =>
    accountAccesses.listAccountAccesses({ projectIds: [String(project.value.id)] }),
  );
  await step(steps, "accesses.by_domain", () =>
    accountAccesses.listAccountAccesses({ domainUuids: [String(domainId)] }),
  );
  // The SDK asks GET …/account_accesses here (not …/permissions/resources): it gets what
  // that path answers.
  await step(steps, "permissions.resources", () => permissions.getResources());
  await step(steps, "accesses.remove", () => accountAccesses.removeAccountAccess(viewer.id));
  await step(steps, "accesses.after", () => accountAccesses.listAccountAccesses());
  await step(steps, "accesses.project_delete", () =>
    client.testing.projects.delete(project.value.id),
  );
}

async function domains(steps) {
  const { sendingDomains, companyInfo } = client;
  const made = await step(steps, "domains.create", () =>
    sendingDomains.create({ domain_name: "node.example" }),
  );
  if (!made.ok) return null;
  const id = made.value.id;
  await step(steps, "domains.list", () => sendingDomains.getList());
  await step(steps, "domains.get", () => sendingDomains.get(id));
  await step(steps, "domains.update", () =>
    sendingDomains.update(id, { open_tracking_enabled: true }),
  );
  await step(steps, "domains.instructions", () =>
    sendingDomains.sendSetupInstructions(id, "ops@node.example"),
  );
  await step(steps, "company.create", () =>
    companyInfo.create(id, {
      name: "Node Ltd",
      address: "1 Main St",
      city: "Springfield",
      country: "US",
      zip_code: "12345",
      website_url: "https://node.example",
    }),
  );
  await step(steps, "company.get", () => companyInfo.get(id));
  await step(steps, "company.update", () => companyInfo.update(id, { name: "Node Inc" }));
  return id;
}

async function templates(steps) {
  const api = client.templates;
  const made = await step(steps, "templates.create", () =>
    api.create({
      name: "Node welcome",
      subject: "Hello {{name}}",
      category: "welcome",
      body_html: "<p>Hello {{name}}</p>",
      body_text: "Hello {{name}}",
    }),
  );
  if (!made.ok) return;
  const id = made.value.id;
  await step(steps, "templates.list", () => api.getList());
  await step(steps, "templates.get", () => api.get(id));
  await step(steps, "templates.update", () => api.update(id, { subject: "Hi {{name}}" }));
  await step(steps, "templates.delete", () => api.delete(id));
  await step(steps, "templates.after", () => api.getList());
}

async function suppressionsAndOptOuts(steps, domainId) {
  const email = "blocked@node.example";
  const made = await step(steps, "suppressions.create", () =>
    client.suppressions.create({ email, domain_id: domainId, sending_stream: "transactional" }),
  );
  await step(steps, "suppressions.list", () => client.suppressions.getList({ email }));
  if (made.ok) {
    await step(steps, "suppressions.delete", () => client.suppressions.delete(made.value.data.id));
  }
  await step(steps, "suppressions.after", () => client.suppressions.getList({ email }));

  const optOuts = client.trackingOptOuts;
  const out = await step(steps, "optouts.create", () =>
    optOuts.create({ email: "private@node.example", domain_id: domainId }),
  );
  await step(steps, "optouts.list", () => optOuts.getList({ email: "private@node.example" }));
  if (out.ok) await step(steps, "optouts.delete", () => optOuts.delete(out.value.data.id));
  await step(steps, "optouts.after", () => optOuts.getList({ email: "private@node.example" }));
}

async function webhooks(steps) {
  const api = client.webhooks;
  // Never called: inactive, and its name resolves nowhere here.
  const url = "https://hooks.example.com/node";
  const made = await step(steps, "webhooks.create", () =>
    api.create({
      url,
      webhook_type: "email_sending",
      active: false,
      sending_stream: "bulk",
      event_types: ["delivery", "open"],
    }),
  );
  if (!made.ok) return;
  const id = made.value.data.id;
  await step(steps, "webhooks.list", () => api.getList());
  await step(steps, "webhooks.get", () => api.get(id));
  await step(steps, "webhooks.update", () =>
    api.update(id, { url: `${url}/v2`, event_types: ["click"] }),
  );
  await step(steps, "webhooks.delete", () => api.delete(id));
  await step(steps, "webhooks.after", () => api.getList());
}

async function sendingLogsAndStats(steps) {
  const from = { email: "node@example.com", name: "Node SDK" };
  await step(steps, "send", () =>
    client.send({ from, to: [{ email: "ann@gmail.com" }], subject: "One", text: "hi", category }),
  );
  await step(steps, "batch", () =>
    client.batchSend({
      base: { from, subject: "Batch", text: "hi", category },
      requests: [{ to: [{ email: "ben@example.org" }] }, { to: [{ email: "cy@yahoo.com" }] }],
    }),
  );
  await step(steps, "bulk.send", () =>
    bulk.send({ from, to: [{ email: "dee@example.net" }], subject: "Bulk", text: "hi", category }),
  );
  const filters = {
    filters: {
      category: { operator: "equal", value: [category] },
      status: { operator: "equal", value: "delivered" },
    },
  };
  const logs = await step(steps, "logs.list", () =>
    eventually(
      () => client.emailLogs.getList(filters),
      (page) => page.messages.length === 4,
    ),
  );
  if (logs.ok && logs.value.messages.length > 0) {
    const id = logs.value.messages[0].message_id;
    await step(steps, "logs.get", () => client.emailLogs.get(id));
  }
  const today = new Date().toISOString().slice(0, 10);
  const params = { start_date: today, end_date: today, categories: [category] };
  await step(steps, "stats.get", () =>
    eventually(
      () => client.stats.get(params),
      (stats) => stats.delivery_count === 4,
    ),
  );
  await step(steps, "stats.by_domain", () => client.stats.byDomain(params));
  await step(steps, "stats.by_category", () => client.stats.byCategory(params));
  await step(steps, "stats.by_esp", () => client.stats.byEmailServiceProvider(params));
  await step(steps, "stats.by_date", () => client.stats.byDate(params));
  await step(steps, "stats.streams", () =>
    client.stats.get({ ...params, sending_streams: ["bulk"] }),
  );
}

async function inboundSetup(steps) {
  const { folders, inboxes } = client.inbound;
  const folder = await step(steps, "folders.create", () => folders.create({ name: "Node desk" }));
  if (!folder.ok) return;
  const fid = folder.value.id;
  await step(steps, "folders.list", () => folders.getList());
  await step(steps, "folders.get", () => folders.get(fid));
  await step(steps, "folders.update", () => folders.update(fid, { name: "Node help" }));
  const inbox = await step(steps, "inboxes.create", () => inboxes.create(fid, { name: "Orders" }));
  if (!inbox.ok) return;
  const iid = inbox.value.id;
  await step(steps, "inboxes.list", () => inboxes.getList(fid));
  await step(steps, "inboxes.get", () => inboxes.get(fid, iid));
  await step(steps, "inboxes.update", () => inboxes.update(fid, iid, { name: "Returns" }));
}

async function inboundMail(steps) {
  const { folders, inboxes, messages, threads } = client.inbound;
  const fid = Number(process.env.POSTROOM_INBOUND_FOLDER);
  const iid = Number(process.env.POSTROOM_INBOUND_INBOX);
  const listed = await step(steps, "messages.list", () => messages.getList(iid));
  const threadList = await step(steps, "threads.list", () => threads.getList(iid));
  if (!listed.ok || !threadList.ok || listed.value.data.length === 0) return;
  const first = listed.value.data[listed.value.data.length - 1].id;
  await step(steps, "messages.get", () => messages.get(iid, first));
  await step(steps, "messages.reply", () => messages.reply(iid, first, { text: "On its way" }));
  await step(steps, "messages.reply_all", () =>
    messages.replyAll(iid, first, { html: "<p>Shipped</p>" }),
  );
  await step(steps, "messages.forward", () =>
    messages.forward(iid, first, { to: [{ email: "ops@dest.example" }], text: "FYI" }),
  );
  const tid = threadList.value.data[0].id;
  await step(steps, "threads.get", () => threads.get(iid, tid));
  // Inbound deletions answer 204 (the contract), so each is checked by the next read.
  await step(steps, "messages.delete", () => messages.delete(iid, first));
  await step(steps, "threads.after_message", () => threads.get(iid, tid));
  await step(steps, "threads.delete", () => threads.delete(iid, tid));
  await step(steps, "messages.after", () => messages.getList(iid));
  await step(steps, "inboxes.delete", () => inboxes.delete(fid, iid));
  await step(steps, "inboxes.after", () => inboxes.getList(fid));
  await step(steps, "folders.delete", () => folders.delete(fid));
  await step(steps, "folders.after", () => folders.getList());
}

// Email campaigns: every method, on a domain and contact list of their own, after the
// sending phase so the campaign's message stays out of the logs and stats checked above.
async function campaigns(steps) {
  const { emailCampaigns, sendingDomains, contactLists, contacts } = client;
  const domain = await sendingDomains.create({ domain_name: "campaigns.node.example" });
  const list = await contactLists.create({ name: "Node campaign readers" });
  await contacts.create({ email: "reader@campaigns.node.example", list_ids: [list.id] });
  const draft = {
    name: "Node launch",
    domain_id: domain.id,
    from_local_part: "news",
    template_attributes: {
      subject: "Hello from Node",
      body_html: '<p>Hi</p><a href="__unsubscribe_url__">Unsubscribe</a>',
    },
    contact_list_ids: [list.id],
  };
  const made = await step(steps, "campaigns.create", () => emailCampaigns.create(draft));
  if (!made.ok) return;
  const id = made.value.data.id;
  await step(steps, "campaigns.list", () => emailCampaigns.getList({ search: "node launch" }));
  await step(steps, "campaigns.get", () => emailCampaigns.get(id));
  await step(steps, "campaigns.update", () =>
    emailCampaigns.update(id, {
      name: "Node launch!",
      delivery_mode: "gradual",
      delivery_options: { emails_per_hour: 1 },
    }),
  );
  const when = new Date(Date.now() + 86400 * 1000).toISOString();
  await step(steps, "campaigns.schedule", () => emailCampaigns.schedule(id, { datetime: when }));
  await step(steps, "campaigns.cancel", () => emailCampaigns.cancel(id));
  await emailCampaigns.schedule(id, { datetime: when });
  await step(steps, "campaigns.reset", () => emailCampaigns.reset(id));
  await contacts.create({ email: "second@campaigns.node.example", list_ids: [list.id] });
  await step(steps, "campaigns.start", () => emailCampaigns.start(id));
  await step(steps, "campaigns.stats", () => emailCampaigns.getStats(id));
  await step(steps, "campaigns.terminate", () => emailCampaigns.terminate(id));
  const spare = await emailCampaigns.create({ ...draft, name: "Node spare" });
  await step(steps, "campaigns.delete", () => emailCampaigns.delete(spare.data.id));
  await step(steps, "campaigns.after", () => emailCampaigns.getList());
}

async function main() {
  const steps = [];
  if (process.env.POSTROOM_PHASE === "inbound") {
    await inboundMail(steps);
    return steps;
  }
  await accountsAndTokens(steps);
  const domainId = await domains(steps);
  if (domainId !== null) {
    await accesses(steps, domainId);
    await suppressionsAndOptOuts(steps, domainId);
    await step(steps, "domains.delete", () => client.sendingDomains.delete(domainId));
  }
  await templates(steps);
  await webhooks(steps);
  await sendingLogsAndStats(steps);
  await inboundSetup(steps);
  await campaigns(steps);
  return steps;
}

run(main);
