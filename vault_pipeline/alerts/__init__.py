"""Alert delivery: the outbox in the catalog, the webhook and Slack transports, ``vault alerts``.

Sensors (``defs/operations/``) raise alerts into the outbox; a delivery pass sends what is
due and records every attempt, so nothing raised is lost when a target is down, and nothing
is sent twice.
"""
