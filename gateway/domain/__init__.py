"""The gateway's pure domain logic outside alerts: occupancy (who is inside which building).

Nothing here imports an I/O library or reads the clock: every function takes ``now`` (an aware
UTC datetime) and plain values, so tests drive it directly and the I/O layer persists the
results. The alert rules and lifecycle, pure in the same way, live in gateway.alerts.
"""
