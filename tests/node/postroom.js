// What every script here shares: the official SDK pointed at the Postroom under test, and
// how a script's steps reach the Python test that runs it.
//
// Each SDK resource reads its endpoint when its module loads, so they are set here, before
// the first require("mailtrap"): POSTROOM_URL for every API, POSTROOM_BULK_URL (when
// given) for bulk sending. Scripts require this module instead of "mailtrap".
"use strict";

const path = require("node:path");

const BASE = process.env.POSTROOM_URL;
const config = require(path.join(path.dirname(require.resolve("mailtrap")), "config")).default;
Object.assign(config.CLIENT_SETTINGS, {
  SENDING_ENDPOINT: BASE,
  BULK_ENDPOINT: process.env.POSTROOM_BULK_URL || BASE,
  TESTING_ENDPOINT: BASE,
  GENERAL_ENDPOINT: BASE,
});
const { MailtrapClient } = require("mailtrap");

// Runs main() and prints the steps it returns as one JSON line on stdout (the test
// asserts each); a crash goes to stderr with exit status 1.
function run(main) {
  main().then(
    (steps) => process.stdout.write(JSON.stringify(steps) + "\n"),
    (error) => {
      process.stderr.write(String((error && error.stack) || error) + "\n");
      process.exit(1);
    },
  );
}

module.exports = { BASE, MailtrapClient, run };
