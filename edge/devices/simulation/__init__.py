"""Simulated service-room appliances that speak MQTT as their real firmware does.

For demos, tests and benchmarks of the device bridge, in layers:

* `fleet` (pure): the simulated rooms, their devices and the meter fitted to each (`HARDWARE`,
  following `firmware_configs/`); `faults` the faults a device can be given.
* `trace` and `physics` (pure): `new_trace` and `step` move one appliance's physical state
  (washer programme, dryer thermostat, dispenser boiler, hair-dryer sessions) forward in
  simulated time, drawing every random choice from the `random.Random` they are given.
* `ledger` and `firmware` (pure): `encode` turns a trace into the messages its meter publishes,
  with each firmware's number formats (topics from edge/devices/vendors.py).
* `runner`: `DeviceSimulator`, one MQTT connection per device, each with the device's own last
  will, publishing every device's readings on a paced clock; faults can be injected while it
  runs. `cli`: `dormguard simulate devices`.
"""
