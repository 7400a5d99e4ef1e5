"""The appliance simulator: pure traces and encoders, then real firmware-like MQTT on mosquitto."""

from __future__ import annotations

import io
import itertools
import json
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from paho.mqtt.client import topic_matches_sub

from contracts.settings import MqttSettings
from edge.devices.app import build_bridge
from edge.devices.config import DevicesConfig
from edge.devices.model import ApplianceType, Firmware, Reading
from edge.devices.normalize import normalize
from edge.devices.simulation.cli import parse_fault_args, run_simulation
from edge.devices.simulation.faults import SimFault
from edge.devices.simulation.firmware import availability_will, client_id_for, encode
from edge.devices.simulation.fleet import (
    Hardware,
    SimDevice,
    bridge_device_entries,
    device_name,
    plan_rooms,
)
from edge.devices.simulation.ledger import advance_ledger, new_ledger
from edge.devices.simulation.physics import generate, new_trace, step, with_fault
from edge.devices.simulation.runner import DeviceSimulator
from edge.devices.simulation.trace import ApplianceTrace
from edge.devices.vendors import DeviceSource, configured_topic, subscriptions
from tests.broker import Broker, Collector, free_port

STEP_S = 10.0
WALL = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
WASHER, DRYER = ApplianceType.WASHER, ApplianceType.DRYER
DISPENSER, HAIR_DRYER = ApplianceType.WATER_DISPENSER, ApplianceType.HAIR_DRYER


def _runs(samples: list[ApplianceTrace], predicate: Any) -> list[list[ApplianceTrace]]:
    """Maximal runs of consecutive samples satisfying predicate."""
    runs: list[list[ApplianceTrace]] = []
    current: list[ApplianceTrace] = []
    for s in samples:
        if predicate(s):
            current.append(s)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


def _first_cycle(samples: list[ApplianceTrace]) -> tuple[list[ApplianceTrace], int]:
    """Samples of the first washer/dryer cycle, and the index of the first sample after it."""
    start = next(i for i, s in enumerate(samples) if s.phase != "idle")
    end = next(i for i in range(start, len(samples)) if samples[i].phase == "idle")
    return samples[start:end], end


# ----------------------------------------------------------------------------- traces


def test_washer_cycle_heats_pauses_spins_and_ends_near_zero() -> None:
    """~60 min: heating 1800-2200 W for 10-14 min, near-0 W pauses inside, spin, then <= 1 W."""
    samples = generate(WASHER, random.Random(11), duration_s=3 * 3600, first_use_s=0)
    cycle, end = _first_cycle(samples)
    assert 50 * 60 <= len(cycle) * STEP_S <= 75 * 60

    heat = [s for s in cycle if s.phase == "heat"]
    assert 600 <= len(heat) * STEP_S <= 850
    assert all(1750 <= s.power_w <= 2250 for s in heat)

    first_heat = cycle.index(heat[0])
    spin = [s for s in cycle if s.phase == "spin"]
    assert cycle[-1].phase == "spin"
    assert 360 <= len(spin) * STEP_S <= 490
    assert all(300 <= s.power_w <= 650 for s in spin)
    between = cycle[first_heat : cycle.index(spin[0])]
    pauses = [s for s in between if s.power_w <= 2.0]
    assert pauses, "the wash has near-0 W pauses"
    assert max(s.power_w for s in between if s.phase == "wash") >= 300  # agitation

    # The bridge holds "running" through 300 s below 5 W: no quiet stretch inside may be longer.
    quiet = _runs(cycle, lambda s: s.power_w < 5.0)
    assert max(len(r) for r in quiet) * STEP_S < 300

    after = samples[end : end + 12]
    assert all(s.power_w <= 1.0 for s in after)
    door_open = next(i for i in range(end, len(samples)) if samples[i].door_open)
    assert 2 * 60 <= (door_open - end + 1) * STEP_S <= 21 * 60
    assert not any(s.door_open for s in cycle)

    energy = [s.energy_kwh for s in samples]
    assert energy == sorted(energy)
    integrated = sum(s.power_w for s in samples) * STEP_S / 3.6e6
    assert samples[-1].energy_kwh - samples[0].energy_kwh == pytest.approx(
        integrated - samples[0].power_w * STEP_S / 3.6e6
    )


def test_dryer_cycles_its_heater_over_the_motor_and_keeps_the_drum_at_40_to_65() -> None:
    samples = generate(DRYER, random.Random(5), duration_s=3 * 3600, first_use_s=0)
    cycle, end = _first_cycle(samples)
    assert 45 * 60 <= len(cycle) * STEP_S <= 71 * 60
    heating = [s for s in cycle if s.phase == "heating"]
    motor_only = [s for s in cycle if s.phase in ("dry", "cooldown")]
    assert all(1950 <= s.power_w <= 2900 for s in heating)
    assert all(150 <= s.power_w <= 250 for s in motor_only)
    assert len(_runs(cycle, lambda s: s.phase == "heating")) >= 3, "heater cycles on and off"
    warm = cycle[next(i for i, s in enumerate(cycle) if (s.temperature_c or 0) >= 45) :]
    dry_phase = [s for s in warm if s.phase != "cooldown"]
    assert all(40 <= (s.temperature_c or 0) <= 65 for s in dry_phase)
    assert all(s.power_w <= 1.0 for s in samples[end : end + 12])


def test_dispenser_heats_to_92_then_idles_at_2_w_and_reheats_at_85() -> None:
    samples = generate(DISPENSER, random.Random(3), duration_s=4 * 3600)
    temps = [s.temperature_c or 0 for s in samples]
    assert max(temps) <= 93.5
    heating = [s for s in samples if s.phase == "heating"]
    idle = [s for s in samples if s.phase != "heating"]
    assert heating and idle
    assert all(1900 <= s.power_w <= 2100 for s in heating)
    assert all(1.0 <= s.power_w <= 3.0 for s in idle)
    for before, after in itertools.pairwise(samples):
        drawn = (after.water_l or 0) > (before.water_l or 0)  # cold water refills the boiler
        if after.phase == "heating" and before.phase != "heating" and not drawn:
            assert (before.temperature_c or 0) <= 85.0 + 0.5  # reheat starts at ~85 degC
        if before.phase == "heating" and after.phase != "heating":
            assert (after.temperature_c or 0) >= 91.0  # stops at ~92 degC
        if before.phase == after.phase == "ready" and after.water_l == before.water_l:
            drop_per_min = ((before.temperature_c or 0) - (after.temperature_c or 0)) * 6
            assert drop_per_min == pytest.approx(0.3, abs=0.01)
    water = [s.water_l or 0 for s in samples]
    assert water == sorted(water) and water[-1] - water[0] > 2.0


def test_dispenser_heater_failure_draws_heater_power_while_the_boiler_stays_flat() -> None:
    samples = generate(DISPENSER, random.Random(3), duration_s=1800, fault=SimFault.HEATER_FAILURE)
    assert all(s.power_w >= 1900 and s.phase == "heating" for s in samples)
    temps = [s.temperature_c or 0 for s in samples]
    assert max(temps) - min(temps) < 0.5  # the bridge wants >= 3 degC within 600 s


def test_hair_dryer_sessions_last_3_to_10_min_at_1200_to_1800_w_with_0_w_between() -> None:
    samples = generate(HAIR_DRYER, random.Random(9), duration_s=6 * 3600, first_use_s=0)
    sessions = _runs(samples, lambda s: s.phase == "on")
    assert len(sessions) >= 3
    for session in sessions[:-1]:  # the last one may be cut by the end of the trace
        assert 170 <= len(session) * STEP_S <= 610
        assert all(1150 <= s.power_w <= 1850 for s in session)
    assert all(s.power_w == 0.0 for s in samples if s.phase == "off")


def test_hair_dryer_overrun_runs_for_hours_unless_the_tasmota_plug_cuts_it_at_30_min() -> None:
    left_on = generate(HAIR_DRYER, random.Random(9), duration_s=3 * 3600, fault=SimFault.OVERRUN)
    on = _runs(left_on, lambda s: s.power_w > 1000)
    assert len(on) == 1 and len(on[0]) * STEP_S >= 2.5 * 3600

    cut = generate(
        HAIR_DRYER, random.Random(9), duration_s=3 * 3600, fault=SimFault.OVERRUN, auto_off_s=1800
    )
    on = _runs(cut, lambda s: s.power_w > 1000)
    assert len(on) >= 2
    assert all(len(run) * STEP_S <= 1800 for run in on)


def test_stuck_washer_never_leaves_the_wash_phase() -> None:
    samples = generate(WASHER, random.Random(2), duration_s=4 * 3600, fault=SimFault.STUCK)
    first_wash = next(i for i, s in enumerate(samples) if s.phase == "wash")
    assert first_wash * STEP_S < 30 * 60
    assert {s.phase for s in samples[first_wash:]} == {"wash", "pause"}
    assert max(len(r) for r in _runs(samples[first_wash:], lambda s: s.power_w < 5)) * 10 < 300


def test_stuck_injected_during_the_spin_goes_back_to_washing_and_clearing_it_finishes() -> None:
    rng = random.Random(4)
    trace = new_trace(WASHER, rng, first_use_s=0)
    while trace.phase != "spin":
        trace = step(trace, STEP_S, rng)
    trace = with_fault(trace, SimFault.STUCK)
    phases = []
    for _ in range(360):  # an hour
        trace = step(trace, STEP_S, rng)
        phases.append(trace.phase)
    assert set(phases[1:]) <= {"wash", "pause"}
    trace = with_fault(trace, None)
    for _ in range(720):
        trace = step(trace, STEP_S, rng)
    assert trace.phase == "idle"


def test_traces_are_reproducible_from_the_seed() -> None:
    for kind in ApplianceType:
        a = generate(kind, random.Random(42), duration_s=3600)
        b = generate(kind, random.Random(42), duration_s=3600)
        assert a == b


def test_tasmota_ledger_rolls_today_into_yesterday_at_midnight() -> None:
    rng = random.Random(1)
    late = datetime(2026, 11, 29, 23, 59, 50, tzinfo=UTC)
    ledger = new_ledger(10.0, late - timedelta(hours=2), rng)
    ledger = advance_ledger(ledger, 11.5, late)
    ledger = advance_ledger(ledger, 11.6, late + timedelta(seconds=20))
    assert ledger.yesterday_kwh == pytest.approx(1.5)
    assert ledger.day_start_kwh == pytest.approx(11.5)
    assert ledger.period_wh == pytest.approx(100.0)


# ----------------------------------------------------------------------------- encoders

BASE_FIELDS = {"power_w", "energy_kwh", "voltage_v", "current_a"}
# What each fitting in firmware_configs/ reports beyond power, energy, voltage and current.
EXTRA_FIELDS: dict[tuple[ApplianceType, Firmware], set[str]] = {
    (WASHER, Firmware.ESPHOME): {"door_open", "leak"},
    (DRYER, Firmware.ESPHOME): {"door_open"},
    (DISPENSER, Firmware.ESPHOME): {"temperature_c", "water_l", "leak"},
    (HAIR_DRYER, Firmware.SHELLY): {"temperature_c"},  # the Plus Plug S's own temperature
}
# Resolution of each firmware's printed numbers (Tasmota prints W and V as integers).
TOLERANCE: dict[Firmware, dict[str, float]] = {
    Firmware.TASMOTA: {"power_w": 0.5, "voltage_v": 0.5, "current_a": 5e-4, "energy_kwh": 5e-4},
    Firmware.ESPHOME: {"power_w": 0.05, "voltage_v": 0.05, "current_a": 5e-3, "energy_kwh": 5e-4},
    Firmware.SHELLY: {"power_w": 0.05, "voltage_v": 0.05, "current_a": 5e-4, "energy_kwh": 1e-6},
}
FIELDS = ("power_w", "energy_kwh", "voltage_v", "current_a", "temperature_c", "water_l")


def _device(kind: ApplianceType, firmware: Firmware, room: str = "r101") -> SimDevice:
    name = device_name(kind, room, 1)
    return SimDevice(name, kind, firmware, "b1", room, configured_topic(firmware, name))


def _expected(device: SimDevice, trace: ApplianceTrace) -> dict[str, Any]:
    values: dict[str, Any] = {
        "power_w": trace.power_w,
        "energy_kwh": trace.energy_kwh,
        "voltage_v": trace.voltage_v,
        "current_a": trace.current_a,
        "temperature_c": trace.temperature_c,
        "water_l": trace.water_l,
        "leak": trace.leak,
        "door_open": trace.door_open,
    }
    if (device.kind, device.firmware) == (HAIR_DRYER, Firmware.SHELLY):
        values["temperature_c"] = trace.board_temp_c
    return values


def _parse_all(device: SimDevice, messages: list[Any]) -> dict[str, Any]:
    """Feed messages to the bridge's normaliser; the merged fields it extracted."""
    source = DeviceSource(device.device_id, device.firmware, device.topic)
    filters = subscriptions(source)
    merged: dict[str, Any] = {}
    for message in messages:
        assert any(topic_matches_sub(f, message.topic) for f in filters), message.topic
        reading = normalize(source, message.topic, message.payload, WALL)
        assert reading is not None, message.topic
        for name in Reading.__slots__:
            value = getattr(reading, name)
            if name not in ("device_id", "at") and value is not None:
                merged[name] = value
    return merged


@pytest.mark.parametrize("firmware", list(Firmware))
@pytest.mark.parametrize("kind", list(ApplianceType))
def test_every_encoded_payload_normalizes_back_to_the_generated_values(
    kind: ApplianceType, firmware: Firmware
) -> None:
    """Each firmware's payloads, read by the bridge's parser, give the trace's values."""
    device = _device(kind, firmware)
    rng = random.Random(7)
    fault = SimFault.LEAK if kind in (WASHER, DISPENSER) else None
    samples = generate(kind, rng, duration_s=4 * 3600, fault=fault, first_use_s=0)
    wanted = BASE_FIELDS | EXTRA_FIELDS.get((kind, firmware), set())
    ledger = new_ledger(samples[0].energy_kwh, WALL, rng)
    seen_doors: set[bool] = set()
    for index, trace in enumerate(samples[::7]):
        wall = WALL + timedelta(seconds=trace.at_s)
        ledger = advance_ledger(ledger, trace.energy_kwh, wall)
        parsed = _parse_all(device, encode(device, trace, ledger, wall))
        assert set(parsed) == wanted, index
        expected = _expected(device, trace)
        for name in FIELDS:
            if name in parsed:
                tol = TOLERANCE[firmware].get(name, 0.05)
                assert parsed[name] == pytest.approx(expected[name], abs=tol), (index, name)
        for name in ("leak", "door_open"):
            if name in parsed:
                assert parsed[name] is expected[name]
        if "door_open" in parsed:
            seen_doors.add(parsed["door_open"])
    if "door_open" in wanted:
        assert seen_doors == {True, False}


def test_tasmota_reports_a_ds18b20_probe_when_the_hardware_has_one() -> None:
    device = _device(DISPENSER, Firmware.TASMOTA)
    trace = generate(DISPENSER, random.Random(1), duration_s=600)[-1]
    ledger = advance_ledger(new_ledger(trace.energy_kwh, WALL, random.Random(1)), 1.0, WALL)
    [message] = encode(device, trace, ledger, WALL, Hardware(probe="boiler_temperature"))
    data = json.loads(message.payload)
    assert data["TempUnit"] == "C" and set(data["ENERGY"]) >= {"Total", "Today", "Yesterday"}
    source = DeviceSource(device.device_id, device.firmware, device.topic)
    reading = normalize(source, message.topic, message.payload, WALL)
    assert reading is not None
    assert reading.temperature_c == pytest.approx(trace.temperature_c, abs=0.05)


@pytest.mark.parametrize("firmware", list(Firmware))
def test_availability_birth_and_will_parse_as_online_and_offline(firmware: Firmware) -> None:
    device = _device(WASHER, firmware)
    source = DeviceSource(device.device_id, firmware, device.topic)
    will = availability_will(firmware, device.topic)
    assert any(topic_matches_sub(f, will.topic) for f in subscriptions(source))
    online = normalize(source, will.topic, will.online_payload, WALL)
    offline = normalize(source, will.topic, will.offline_payload, WALL)
    assert online is not None and online.online is True
    assert offline is not None and offline.online is False


# ----------------------------------------------------------------------------- planning


def test_plan_rooms_puts_five_appliances_per_room_with_round_robin_firmware() -> None:
    devices = plan_rooms(2, building="hall-a", faults={"water-r102-1": "heater_failure"})
    assert [d.device_id for d in devices[:5]] == [
        "washer-r101-1",
        "washer-r101-2",
        "dryer-r101-1",
        "water-r101-1",
        "hairdryer-r101-1",
    ]
    assert [d.firmware.value for d in devices[:4]] == ["tasmota", "esphome", "shelly", "tasmota"]
    assert {d.room for d in devices} == {"r101", "r102"}
    by_id = {d.device_id: d for d in devices}
    assert by_id["washer-r101-2"].topic == "dorm-dev/washer-r101-2"
    assert by_id["dryer-r101-1"].topic == "shelly-dryer-r101-1"
    assert by_id["water-r102-1"].fault is SimFault.HEATER_FAILURE
    config = DevicesConfig.model_validate(
        {"site": "campus", "bridge_id": "b", "devices": bridge_device_entries(devices)}
    )
    assert len(config.devices) == 10


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        ({"washer-r999-1": "leak"}, "unknown devices"),
        ({"washer-r101-1": "melting"}, "unknown fault"),
        ({"hairdryer-r101-1": "stuck"}, "applies to"),
    ],
)
def test_plan_rooms_rejects_bad_faults(faults: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_rooms(1, faults=faults)


def test_fault_arguments_parse_and_bad_ones_are_named() -> None:
    assert parse_fault_args(["washer-r101-1=leak", " water-r101-1 = offline"]) == {
        "washer-r101-1": "leak",
        "water-r101-1": "offline",
    }
    with pytest.raises(ValueError, match="washer-r101-1"):
        parse_fault_args(["washer-r101-1"])


# ----------------------------------------------------------------------------- on a broker


def _settings(broker: Broker) -> MqttSettings:
    return MqttSettings(port=broker.port, keepalive_s=5)


@pytest.fixture
def collector(broker: Broker) -> Iterator[Collector]:
    c = Collector(broker.port, "#", client_id=f"sim-{uuid.uuid4().hex[:6]}").start()
    yield c
    c.stop()


def _payloads(collector: Collector, topic: str) -> list[bytes]:
    return [p for t, p, _ in collector.snapshot() if t == topic]


def _telemetry(device: SimDevice) -> str:
    if device.firmware is Firmware.TASMOTA:
        return f"tele/{device.topic}/SENSOR"
    if device.firmware is Firmware.ESPHOME:
        return f"{device.topic}/sensor/power/state"
    component = "switch:0" if device.kind is HAIR_DRYER else "pm1:0"
    return f"{device.topic}/status/{component}"


def test_one_room_publishes_vendor_topics_with_retained_online_then_clean_offline(
    broker: Broker, collector: Collector
) -> None:
    devices = plan_rooms(1)
    wills = {availability_will(d.firmware, d.topic) for d in devices}
    sim = DeviceSimulator(devices, _settings(broker), speed=600, period_s=10, seed=3)
    sim.start()
    try:
        got = collector.wait_for(
            lambda m: all(any(t == _telemetry(d) for t, _, _ in m) for d in devices)
        )
        for device in devices:
            source = DeviceSource(device.device_id, device.firmware, device.topic)
            mine = [
                (t, p)
                for t, p, _ in got
                if any(topic_matches_sub(f, t) for f in subscriptions(source))
            ]
            assert any(t == _telemetry(device) for t, _ in mine), device.device_id
            for topic, payload in mine:
                normalize(source, topic, payload, WALL)  # raises on anything malformed

        late = Collector(broker.port, "#", client_id=f"late-{uuid.uuid4().hex[:6]}").start()
        try:
            retained = late.wait_for(
                lambda m: (
                    {(t, p) for t, p, r in m if r} >= {(w.topic, w.online_payload) for w in wills}
                )
            )
            for will in wills:
                assert (will.topic, will.online_payload, True) in retained
        finally:
            late.stop()
        assert sim.counters.published > 0 and sim.counters.publish_errors == 0
    finally:
        sim.stop()
    collector.wait_for(
        lambda m: all(w.offline_payload in _payloads(collector, w.topic) for w in wills)
    )
    for will in wills:
        assert _payloads(collector, will.topic)[-1] == will.offline_payload


def test_offline_fault_makes_the_broker_publish_the_devices_last_will(
    broker: Broker, collector: Collector
) -> None:
    washer = _device(WASHER, Firmware.TASMOTA, room="r909")
    dispenser = _device(DISPENSER, Firmware.ESPHOME, room="r909")
    sim = DeviceSimulator([washer, dispenser], _settings(broker), speed=600, period_s=10)
    sim.start()
    try:
        sensor, lwt = "tele/washer-r909-1/SENSOR", "tele/washer-r909-1/LWT"
        collector.wait_for(lambda m: len(_payloads(collector, sensor)) >= 3)
        assert _payloads(collector, lwt)[-1] == b"Online"

        sim.inject(washer.device_id, "offline")
        collector.wait_for(lambda m: b"Offline" in _payloads(collector, lwt), timeout=5)
        assert _payloads(collector, lwt)[-1] == b"Offline"
        # Sent by mosquitto as the will of a connection lost without DISCONNECT.
        log_text = (broker.workdir / "mosquitto.log").read_text()
        assert f"Client {client_id_for(washer)} closed its connection." in log_text
        silent_from = len(_payloads(collector, sensor))
        other = "dorm-dev/water-r909-1/sensor/power/state"
        still = len(_payloads(collector, other))
        collector.wait_for(lambda m: len(_payloads(collector, other)) >= still + 10)
        assert len(_payloads(collector, sensor)) <= silent_from + 1  # at most one in flight

        sim.inject(washer.device_id, None)  # back: reconnects with its birth message
        collector.wait_for(lambda m: _payloads(collector, lwt)[-1] == b"Online", timeout=5)
        assert _payloads(collector, lwt)[-1] == b"Online"
        collector.wait_for(lambda m: len(_payloads(collector, sensor)) > silent_from + 2)
        assert len(_payloads(collector, sensor)) > silent_from + 2
    finally:
        sim.stop()


def test_a_device_planned_offline_reports_then_drops_and_the_bridge_marks_it_offline(
    broker: Broker, collector: Collector
) -> None:
    """End to end: simulated firmware -> mosquitto -> the real device bridge, no rejections."""
    devices = plan_rooms(1, first_room=701, faults={"hairdryer-r701-1": "offline"})
    config = DevicesConfig.model_validate(
        {
            "site": "campus",
            "bridge_id": "sim-test",
            "mqtt": {"port": broker.port},
            "telemetry_interval_s": 0,
            "tick_s": 0.1,
            "devices": bridge_device_entries(devices),
        }
    )
    bridge = build_bridge(config)
    bridge.start()
    assert bridge.link.wait_ready(10)
    sim = DeviceSimulator(devices, _settings(broker), speed=600, period_s=10, seed=8)
    sim.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            states = bridge.states()
            if (
                all(s.last_seen is not None for s in states.values())
                and not states["hairdryer-r701-1"].online
            ):
                break
            time.sleep(0.05)
        states = bridge.states()
        assert all(s.last_seen is not None for s in states.values())
        assert states["hairdryer-r701-1"].online is False
        assert all(s.online for k, s in states.items() if k != "hairdryer-r701-1")
        assert bridge.counters.rejected == 0, bridge.counters.last_rejection
        assert states["water-r701-1"].energy_kwh is not None
    finally:
        sim.stop()
        bridge.stop()


def test_run_simulation_prints_a_line_per_device_and_stops_after_its_duration(
    broker: Broker,
) -> None:
    out = io.StringIO()
    code = run_simulation(_settings(broker), 1, speed=600, duration_s=1.0, out=out)
    lines = out.getvalue().splitlines()
    assert code == 0
    assert [line.split()[0] for line in lines[:5]] == [d.device_id for d in plan_rooms(1)]
    assert "messages published" in lines[-1]


def test_simulator_without_a_broker_starts_with_nothing_connected() -> None:
    settings = MqttSettings(port=free_port())
    sim = DeviceSimulator(plan_rooms(1), settings, connect_timeout_s=0.5)
    sim.start()
    try:
        assert sim.connected_count() == 0
    finally:
        sim.stop()
