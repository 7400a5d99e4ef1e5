"""The gateway's pure domain logic: alert rules, alert lifecycle, occupancy, welfare.

Nothing here imports an I/O library or reads the clock: every function takes ``now`` (an aware
UTC datetime) and plain values, so tests drive it directly and the I/O layer persists the
results. See docs/decisions/0005-alert-lifecycle.md.
"""
