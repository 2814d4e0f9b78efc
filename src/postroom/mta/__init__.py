"""The MTA engine: routing, SMTP sessions, retry and throttling policy;
protocols are libraries', policy is ours."""
