"""Alerts, from a rule's verdict to the guard's screen.

Pure (time is an argument, no I/O): ``types`` (alert types, severities, ``Signal``),
``originators`` (what an alert is about), ``rules/`` (events in, signals out, one module per
rule family), ``lifecycle`` (the alert state machine: raise, acknowledge, clear, silences,
escalation) and ``handover`` (the shift summary). I/O: ``repository`` and ``silences`` (SQL),
``scope`` (who may see which alerts), ``views`` (API models), ``bus`` (live fan-out to the
WebSocket) and ``service`` (``AlertService``, which ties them together). See
docs/decisions/0005-alert-lifecycle.md.
"""
