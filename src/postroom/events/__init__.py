"""Events: the append-only record of everything that happens to a message.

Producers build rows with :func:`postroom.events.recorder.event_row` and insert them in the
same transaction as the state change they record. Consumers (suppressions, stats,
webhooks, alerts in later releases) read events; nothing else writes them.
"""
