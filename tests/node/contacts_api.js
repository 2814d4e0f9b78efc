// The official mailtrap Node.js SDK against a running Postroom: every contacts call the
// SDK has (contact fields, contact lists, contacts, contact events, imports, exports).
// Run by tests/e2e/test_node_sdk_e2e.py, which reads the JSON printed on stdout and
// asserts what each step answered.
//
// Environment: POSTROOM_URL, POSTROOM_TOKEN, POSTROOM_ACCOUNT_ID, POSTROOM_SUBJECT (a
// unique word, used in the contacts' addresses so reruns against one server never
// collide); NODE_EXTRA_CA_CERTS trusts the test CA.
"use strict";

const { MailtrapClient } = require("./postroom");

const tag = process.env.POSTROOM_SUBJECT.replace(/[^a-z0-9]/gi, "");
const client = new MailtrapClient({
  token: process.env.POSTROOM_TOKEN,
  accountId: Number(process.env.POSTROOM_ACCOUNT_ID),
});
const { contacts, contactLists, contactFields, contactEvents, contactImports, contactExports } =
  client;

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
  const must = async (name, call) => {
    const done = await step(name, call);
    steps.push(done);
    if (!done.ok) throw Object.assign(new Error(name), { steps });
    return done.value;
  };

  // Fields: the merge tags a contact's values are kept under.
  const city = await must("field.create", () =>
    contactFields.create({ name: `City ${tag}`, data_type: "text", merge_tag: `city_${tag}` }),
  );
  const age = await must("field.create.age", () =>
    contactFields.create({ name: `Age ${tag}`, data_type: "integer", merge_tag: `age_${tag}` }),
  );
  await must("field.list", () => contactFields.getList());
  await must("field.get", () => contactFields.get(city.id));
  await must("field.update", () => contactFields.update(city.id, { name: `Town ${tag}` }));

  // Lists.
  const news = await must("list.create", () => contactLists.create({ name: `News ${tag}` }));
  const vip = await must("list.create.vip", () => contactLists.create({ name: `VIP ${tag}` }));
  await must("list.list", () => contactLists.getList());
  await must("list.search", () => contactLists.getList({ search: `News ${tag}` }));
  await must("list.get", () => contactLists.get(vip.id));
  await must("list.update", () => contactLists.update(vip.id, { name: `Gold ${tag}` }));

  // Contacts: by id and by address (the SDK puts the address in the path as it is).
  const email = `ann.${tag}@example.com`;
  const fields = { [`city_${tag}`]: "Oslo", [`age_${tag}`]: 30 };
  const ann = await must("contact.create", () =>
    contacts.create({ email, fields, list_ids: [news.id] }),
  );
  await must("contact.get.id", () => contacts.get(ann.data.id));
  await must("contact.get.email", () => contacts.get(email));
  await must("contact.update", () =>
    contacts.update(ann.data.id, {
      email,
      fields: { [`age_${tag}`]: 31 },
      list_ids_included: [vip.id],
      list_ids_excluded: [news.id],
    }),
  );
  await must("contact.unsubscribe", () => contacts.update(email, { email, unsubscribed: true }));

  // Events.
  await must("event.create", () =>
    contactEvents.create(ann.data.id, { name: "UserLogin", params: { ok: true, n: 2, x: null } }),
  );

  // Imports: one new contact, one existing.
  const job = await must("import.create", () =>
    contactImports.create({
      contacts: [
        {
          email: `bob.${tag}@example.com`,
          fields: { [`age_${tag}`]: 40 },
          list_ids_included: [news.id],
        },
        { email, fields: { [`city_${tag}`]: "Bergen" } },
      ],
    }),
  );
  await must("import.get", () => contactImports.get(job.id));
  await must("contact.get.imported", () => contacts.get(`bob.${tag}@example.com`));

  // Exports: the contacts of the News list.
  const exported = await must("export.create", () =>
    contactExports.create({ filters: [{ name: "list_id", operator: "equal", value: [news.id] }] }),
  );
  await must("export.get", () => contactExports.get(exported.id));

  // Deletes, then the deleted contact is gone.
  await must("contact.delete", () => contacts.delete(ann.data.id));
  steps.push(await step("contact.gone", () => contacts.get(ann.data.id)));
  await must("list.delete", () => contactLists.delete(vip.id));
  await must("field.delete", () => contactFields.delete(age.id));
  return steps;
}

main().then(
  (steps) => process.stdout.write(JSON.stringify(steps)),
  (error) => {
    if (error && error.steps) {
      // A step failed: print what ran, so the test names the step that failed.
      process.stdout.write(JSON.stringify(error.steps));
      return;
    }
    process.stderr.write(String(error && error.stack ? error.stack : error));
    process.exit(1);
  },
);
