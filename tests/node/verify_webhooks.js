// The official mailtrap Node.js SDK's verifyWebhookSignature over webhook POSTs Postroom
// made. Run by tests/e2e/test_webhooks_e2e.py: stdin is a JSON array of
// {"body_b64", "signature", "secret"}; stdout is the JSON array of the SDK's verdicts.
"use strict";

const { verifyWebhookSignature } = require("mailtrap");

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  input += chunk;
});
process.stdin.on("end", () => {
  const posts = JSON.parse(input);
  const verdicts = posts.map((p) =>
    verifyWebhookSignature(Buffer.from(p.body_b64, "base64"), p.signature, p.secret),
  );
  process.stdout.write(JSON.stringify(verdicts));
});
