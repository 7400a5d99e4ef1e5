"""The alert rules (pure: time is an argument, no I/O): events and state in, signals out.

``engine.AlertRules`` takes every validated edge event and dispatches it to one module per
rule family: ``access`` (unknown faces, repeated denials, after curfew), ``doors`` (held and
forced open, tailgating, refused forged commands), ``availability`` (edges, bridges and devices
offline), ``alarms`` (a gate's heartbeat alarms), ``appliances`` (appliance faults),
``sequence`` (events missing from a gate's outbox). ``welfare`` turns presence into the
counsellors' welfare alerts on the maintenance tick. Shared pieces: ``config`` (RulesConfig),
``report`` (signals from findings), ``windows`` (sliding windows).
"""
