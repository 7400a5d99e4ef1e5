"""Door actuators: timed unlock and relock, extension, immediate lock, MQTT relay and GPIO."""

from __future__ import annotations

import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

from edge.gate.door import DoorActuator, GpioContact, GpioDoor, MqttRelayDoor, SimulatedDoor

GPIO_MISSING = "GPIO door needs the 'gpio' extra: pip install dormguard[gpio]"


def wait_until(predicate: Callable[[], bool], timeout_s: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


@pytest.fixture
def door() -> Iterator[SimulatedDoor]:
    d = SimulatedDoor()
    d.start()
    yield d
    d.stop()


class RecordingPublish:
    """Stands in for the MQTT client: records (topic, payload, qos, retain) with times."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes, int, bool]] = []
        self.times: list[float] = []
        self.fail = False
        self._lock = threading.Lock()

    def __call__(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        if self.fail:
            raise ConnectionError("broker unreachable")
        with self._lock:
            self.calls.append((topic, payload, qos, retain))
            self.times.append(time.monotonic())

    def payloads(self) -> list[bytes]:
        with self._lock:
            return [c[1] for c in self.calls]


# --- SimulatedDoor -------------------------------------------------------------------------


def test_simulated_door_satisfies_the_actuator_protocol() -> None:
    actuator: DoorActuator = SimulatedDoor()
    assert not actuator.is_unlocked


def test_open_unlocks_then_relocks_after_the_duration(door: SimulatedDoor) -> None:
    started = time.monotonic()
    door.open(0.1)
    assert door.is_unlocked
    assert wait_until(lambda: not door.is_unlocked)
    kinds = [kind for _, kind in door.transitions]
    assert kinds == ["unlocked", "locked"]
    (t_unlock, _), (t_lock, _) = door.transitions
    assert t_unlock >= started
    assert 0.1 <= t_lock - t_unlock < 1.0


def test_open_while_unlocked_extends_without_a_second_unlock(door: SimulatedDoor) -> None:
    door.open(0.15)
    time.sleep(0.1)
    door.open(0.15)  # relock moves to >= 0.25 s after the first open
    assert wait_until(lambda: not door.is_unlocked)
    (t_unlock, k1), (t_lock, k2) = door.transitions
    assert (k1, k2) == ("unlocked", "locked")
    assert t_lock - t_unlock >= 0.25


def test_shorter_open_does_not_cut_an_unlock_short(door: SimulatedDoor) -> None:
    door.open(0.2)
    door.open(0.05)
    assert wait_until(lambda: not door.is_unlocked)
    (t_unlock, _), (t_lock, _) = door.transitions
    assert t_lock - t_unlock >= 0.2


def test_extension_with_an_injected_clock_holds_past_the_first_deadline() -> None:
    now = [0.0]
    d = SimulatedDoor(clock=lambda: now[0])
    d.start()
    try:
        d.open(5.0)
        now[0] = 3.0
        d.open(5.0)  # relock at 8.0
        now[0] = 6.0  # past the first deadline
        time.sleep(0.3)  # longer than the worker's longest wait: it has looked at the clock
        assert d.is_unlocked
        now[0] = 8.0
        assert wait_until(lambda: not d.is_unlocked)
        assert d.transitions == [(0.0, "unlocked"), (8.0, "locked")]
    finally:
        d.stop()


def test_lock_relocks_immediately_and_cancels_the_pending_relock(door: SimulatedDoor) -> None:
    door.open(0.2)
    door.lock()
    assert not door.is_unlocked
    assert [k for _, k in door.transitions] == ["unlocked", "locked"]
    time.sleep(0.3)
    assert [k for _, k in door.transitions] == ["unlocked", "locked"]


def test_lock_while_locked_records_nothing(door: SimulatedDoor) -> None:
    door.lock()
    assert door.transitions == []


def test_door_can_be_opened_again_after_relocking(door: SimulatedDoor) -> None:
    door.open(0.05)
    assert wait_until(lambda: not door.is_unlocked)
    door.open(0.05)
    assert wait_until(lambda: not door.is_unlocked)
    assert [k for _, k in door.transitions] == ["unlocked", "locked", "unlocked", "locked"]


def test_stop_relocks_an_unlocked_door() -> None:
    d = SimulatedDoor()
    d.start()
    d.open(10.0)
    d.stop()
    assert not d.is_unlocked
    assert [k for _, k in d.transitions] == ["unlocked", "locked"]


def test_stop_of_a_locked_simulated_door_records_nothing() -> None:
    d = SimulatedDoor()
    d.start()
    d.stop()
    assert d.transitions == []


def test_open_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="start"):
        SimulatedDoor().open(1.0)


@pytest.mark.parametrize("duration_s", [0.0, -1.0, float("nan"), float("inf")])
def test_open_rejects_invalid_durations(door: SimulatedDoor, duration_s: float) -> None:
    with pytest.raises(ValueError, match="duration"):
        door.open(duration_s)
    assert door.transitions == []


def test_injected_clock_times_the_transitions_and_the_relock() -> None:
    now = [1000.0]
    d = SimulatedDoor(clock=lambda: now[0])
    d.start()
    try:
        d.open(5.0)
        time.sleep(0.05)
        assert d.is_unlocked  # the fake clock has not moved
        now[0] = 1005.5
        assert wait_until(lambda: not d.is_unlocked)
        assert d.transitions == [(1000.0, "unlocked"), (1005.5, "locked")]
    finally:
        d.stop()


def test_concurrent_opens_unlock_once(door: SimulatedDoor) -> None:
    threads = [threading.Thread(target=door.open, args=(0.1,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wait_until(lambda: not door.is_unlocked)
    assert [k for _, k in door.transitions] == ["unlocked", "locked"]


# --- MqttRelayDoor -------------------------------------------------------------------------


TOPIC = "cmnd/dorm-a-gate1-lock/POWER"


def test_mqtt_relay_relocks_on_start_then_sends_on_and_off_at_qos1_not_retained() -> None:
    pub = RecordingPublish()
    relay = MqttRelayDoor(pub, TOPIC)
    relay.start()
    try:
        relay.open(0.1)
        assert relay.is_unlocked
        assert wait_until(lambda: not relay.is_unlocked)
    finally:
        relay.stop()
    assert pub.calls[:3] == [
        (TOPIC, b"OFF", 1, False),  # start: relock in case the last run died unlocked
        (TOPIC, b"ON", 1, False),
        (TOPIC, b"OFF", 1, False),
    ]
    assert pub.times[2] - pub.times[1] >= 0.1
    # stop() re-asserts OFF even though the relay is already locked
    assert pub.calls[3:] == [(TOPIC, b"OFF", 1, False)]


def test_mqtt_relay_uses_custom_payloads() -> None:
    pub = RecordingPublish()
    relay = MqttRelayDoor(pub, "cmnd/lock/POWER1", on_payload="1", off_payload="0")
    relay.start()
    relay.open(5.0)
    relay.lock()
    relay.stop()
    assert pub.payloads() == [b"0", b"1", b"0", b"0"]
    assert {c[0] for c in pub.calls} == {"cmnd/lock/POWER1"}


def test_mqtt_relay_stop_publishes_off_while_unlocked() -> None:
    pub = RecordingPublish()
    relay = MqttRelayDoor(pub, TOPIC)
    relay.start()
    relay.open(30.0)
    relay.stop()
    assert pub.payloads() == [b"OFF", b"ON", b"OFF"]
    assert not relay.is_unlocked


def test_mqtt_relay_open_failure_reaches_the_caller_and_leaves_the_door_locked() -> None:
    pub = RecordingPublish()
    relay = MqttRelayDoor(pub, TOPIC)
    relay.start()
    try:
        pub.fail = True
        with pytest.raises(ConnectionError):
            relay.open(1.0)
        assert not relay.is_unlocked
    finally:
        pub.fail = False
        relay.stop()


def test_mqtt_relay_start_survives_an_unreachable_broker() -> None:
    pub = RecordingPublish()
    pub.fail = True
    relay = MqttRelayDoor(pub, TOPIC)
    relay.start()
    pub.fail = False
    relay.open(0.05)
    assert wait_until(lambda: not relay.is_unlocked)
    relay.stop()
    assert pub.payloads() == [b"ON", b"OFF", b"OFF"]


@pytest.mark.parametrize(
    "topic", ["cmnd/+/POWER", "cmnd/lock/#", "#", "", "cmnd/lo\x00ck/POWER", "cmnd/lock+/POWER"]
)
def test_mqtt_relay_rejects_wildcard_or_empty_topics(topic: str) -> None:
    with pytest.raises(ValueError, match="topic"):
        MqttRelayDoor(RecordingPublish(), topic)


def test_mqtt_relay_constructor_publishes_nothing() -> None:
    pub = RecordingPublish()
    MqttRelayDoor(pub, TOPIC)
    assert pub.calls == []


# --- GPIO ----------------------------------------------------------------------------------


def test_gpio_door_without_gpiozero_raises_a_clear_error_on_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "gpiozero", None)  # makes `import gpiozero` fail
    door = GpioDoor(17)  # constructing must not touch GPIO
    with pytest.raises(RuntimeError) as info:
        door.start()
    assert str(info.value) == GPIO_MISSING
    assert not door.is_unlocked


def test_gpio_contact_without_gpiozero_raises_a_clear_error_on_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "gpiozero", None)
    contact = GpioContact(27, on_change=lambda is_open: None)
    with pytest.raises(RuntimeError, match=r"pip install dormguard\[gpio\]"):
        contact.start()


class FakeOutputDevice:
    instances: ClassVar[list[FakeOutputDevice]] = []

    def __init__(self, pin: int, active_high: bool, initial_value: bool) -> None:
        self.pin = pin
        self.active_high = active_high
        self.states = [initial_value]
        self.closed = False
        FakeOutputDevice.instances.append(self)

    def on(self) -> None:
        self.states.append(True)

    def off(self) -> None:
        self.states.append(False)

    def close(self) -> None:
        self.closed = True


class FakeButton:
    instances: ClassVar[list[FakeButton]] = []

    def __init__(self, pin: int, pull_up: bool, bounce_time: float | None) -> None:
        self.pin = pin
        self.pull_up = pull_up
        self.is_pressed = True  # door closed
        self.when_pressed: Callable[[], None] | None = None
        self.when_released: Callable[[], None] | None = None
        self.closed = False
        FakeButton.instances.append(self)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_gpiozero(monkeypatch: pytest.MonkeyPatch) -> Any:
    module: Any = types.ModuleType("gpiozero")
    module.OutputDevice = FakeOutputDevice
    module.Button = FakeButton
    FakeOutputDevice.instances.clear()
    FakeButton.instances.clear()
    monkeypatch.setitem(sys.modules, "gpiozero", module)
    return module


def test_gpio_door_drives_the_pin_and_releases_it(fake_gpiozero: Any) -> None:
    door = GpioDoor(17, active_high=False)
    assert FakeOutputDevice.instances == []  # nothing opened before start()
    door.start()
    (device,) = FakeOutputDevice.instances
    assert (device.pin, device.active_high) == (17, False)
    door.open(0.05)
    assert wait_until(lambda: not door.is_unlocked)
    door.stop()
    assert device.states == [False, True, False, False]
    assert device.closed


def test_gpio_contact_reports_initial_state_and_changes(fake_gpiozero: Any) -> None:
    seen: list[bool] = []
    contact = GpioContact(27, on_change=seen.append)
    contact.start()
    (button,) = FakeButton.instances
    assert button.pull_up
    assert seen == [False]  # pressed = magnet on the switch = door closed
    assert button.when_released is not None and button.when_pressed is not None
    button.when_released()
    button.when_pressed()
    assert seen == [False, True, False]
    contact.stop()
    assert button.closed


def test_gpio_contact_handler_errors_are_logged_not_raised(
    fake_gpiozero: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(is_open: bool) -> None:
        raise RuntimeError("handler bug")

    contact = GpioContact(27, on_change=explode)
    contact.start()
    assert "door contact handler failed" in caplog.text
    contact.stop()
