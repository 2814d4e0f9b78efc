"""The inbound SMTP listener of the return-path domains: bounces and feedback reports."""
