"""The sandbox (Email Testing): captures mail into test inboxes instead of delivering it."""
