// Send one email through Postroom with the official Mailtrap Node.js SDK.
//
//   npm install mailtrap
//   POSTROOM_URL=https://mail.example.com POSTROOM_TOKEN=pr_... \
//     EXAMPLE_FROM=app@your-domain.example EXAMPLE_TO=you@example.org node send.js
//
// A private CA is trusted with NODE_EXTRA_CA_CERTS=/path/ca.pem. Prints the message ids.
"use strict";

const path = require("node:path");

// The SDK reads its endpoints from its config module when first loaded: point them at
// Postroom before the first require("mailtrap").
const BASE = process.env.POSTROOM_URL.replace(/\/+$/, "");
const config = require(path.join(path.dirname(require.resolve("mailtrap")), "config")).default;
Object.assign(config.CLIENT_SETTINGS, {
  SENDING_ENDPOINT: BASE,
  BULK_ENDPOINT: BASE,
  TESTING_ENDPOINT: BASE,
  GENERAL_ENDPOINT: BASE,
});
const { MailtrapClient } = require("mailtrap");

const client = new MailtrapClient({ token: process.env.POSTROOM_TOKEN });

client
  .send({
    from: { email: process.env.EXAMPLE_FROM, name: "Postroom example" },
    to: [{ email: process.env.EXAMPLE_TO }],
    subject: "Hello from the Mailtrap Node.js SDK and Postroom",
    text: "It works: sent with the official Node.js SDK.",
    category: "examples",
  })
  .then((response) => console.log(response.message_ids.join(" ")))
  .catch((error) => {
    console.error(error.message || error);
    process.exit(1);
  });
