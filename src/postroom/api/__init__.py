"""HTTP API: the Mailtrap-compatible routes and Postroom's own."""
