"""The scripted chaos run (bench/chaos.py): the whole system for real, faults in sequence, counts.

- `gatesim` — a simulated gate daemon: card decisions and door events through the gate's own
  reporter, durable outbox and publisher (edge/), with a ledger of what it produced.
- `netns` — an edge's own network namespace (veth to the host), so it can be cut off.
- `system` — starts, restarts, kills and stops every process (one process group each).
- `faults` — the fault schedule and what each fault does.
- `counting` — produced vs stored, duplicates, per-gate order, alerts, time-series points.
"""
