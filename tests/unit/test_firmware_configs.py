"""The device-side configs in firmware_configs/ agree with their READMEs, samples and the bridge.

Tasmota scripts, ESPHome YAML and Shelly RPC requests are parsed as a technician's device would
read them; every payloads.json sample is fed to the bridge's normaliser, which must extract
exactly the canonical fields the sample promises.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.devices.config import DeviceEntry
from edge.devices.model import ApplianceType, Firmware, Reading
from edge.devices.normalize import normalize
from edge.devices.vendors import DeviceSource

CONFIGS = Path(__file__).resolve().parents[2] / "firmware_configs"
AT = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)

CANONICAL_FIELDS = (
    "power_w",
    "energy_kwh",
    "voltage_v",
    "current_a",
    "temperature_c",
    "water_l",
    "leak",
    "door_open",
    "online",
)
BOOL_FIELDS = frozenset({"leak", "door_open", "online"})
POWER_SENSORS = frozenset({"power", "energy", "voltage", "current"})
PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*>")

# Tasmota commands the scripts may use, each checked against Tasmota's Commands documentation.
TASMOTA_COMMANDS = frozenset(
    {
        "Template",
        "Module",
        "DeviceName",
        "FriendlyName1",
        "Topic",
        "MqttHost",
        "MqttPort",
        "MqttUser",
        "MqttPassword",
        "TelePeriod",
        "PowerOnState",
        "Timezone",
        "PowerDelta",
        "MaxPower",
        "MaxPowerHold",
        "Rule1",
        "Rule2",
    }
)
BACKLOG_LIMIT = 30  # Tasmota runs at most 30 commands from one Backlog
# A template's GPIO array for an ESP8266/ESP8285 lists these pins, in this order.
ESP8266_TEMPLATE_PINS = (0, 1, 2, 3, 4, 5, 9, 10, 12, 13, 14, 15, 16, 17)
RELAY1, CSE7766_RX, DS18X20 = 224, 3104, 1312
ENERGY_INPUTS = frozenset({CSE7766_RX, 2720, 2688, 2656})  # CSE7766 Rx, BL0937/HLW8012 CF, CF1

# MQTT.SetConfig keys documented for Shelly Gen2 (pass is write-only).
SHELLY_MQTT_KEYS = frozenset(
    {
        "enable",
        "server",
        "client_id",
        "user",
        "pass",
        "ssl_ca",
        "topic_prefix",
        "rpc_ntf",
        "status_ntf",
        "use_client_cert",
        "enable_rpc",
        "enable_control",
    }
)


@dataclass(frozen=True, slots=True)
class Appliance:
    """One appliance folder and what its configs must provide."""

    kind: ApplianceType
    name: str  # device id, Tasmota %topic% and ESPHome node name
    shelly_component: str
    esphome_sensors: frozenset[str]
    esphome_binary: frozenset[str]

    @property
    def folder(self) -> Path:
        return CONFIGS / self.kind.value

    @property
    def topics(self) -> dict[Firmware, str]:
        """The topic each firmware is configured with, as the bridge config names it."""
        return {
            Firmware.TASMOTA: self.name,
            Firmware.ESPHOME: f"dorm-dev/{self.name}",
            Firmware.SHELLY: f"shelly-{self.name}",
        }


APPLIANCES = (
    Appliance(
        ApplianceType.WASHER, "washer-r101-1", "pm1:0", POWER_SENSORS, frozenset({"door", "leak"})
    ),
    Appliance(ApplianceType.DRYER, "dryer-r101-1", "pm1:0", POWER_SENSORS, frozenset({"door"})),
    Appliance(
        ApplianceType.WATER_DISPENSER,
        "water-r101-1",
        "pm1:0",
        POWER_SENSORS | {"boiler_temperature", "water_total"},
        frozenset({"leak"}),
    ),
    Appliance(ApplianceType.HAIR_DRYER, "hairdryer-r101-1", "switch:0", POWER_SENSORS, frozenset()),
)
BY_KIND = {a.kind: a for a in APPLIANCES}


def each_appliance() -> pytest.MarkDecorator:
    return pytest.mark.parametrize("app", APPLIANCES, ids=[a.kind.value for a in APPLIANCES])


# ----------------------------------------------------------------------------- Tasmota


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    arg: str


def tasmota_lines(app: Appliance) -> list[str]:
    """The console lines of tasmota.txt: '#' lines are notes for the technician."""
    text = (app.folder / "tasmota.txt").read_text(encoding="utf-8")
    return [s for s in (raw.strip() for raw in text.splitlines()) if s and not s.startswith("#")]


def split_command(text: str) -> Command:
    name, _, arg = text.strip().partition(" ")
    return Command(name, arg.strip())


def backlogs(app: Appliance) -> list[list[Command]]:
    """Each console line as the commands Tasmota will run, Backlog lines split on ';'."""
    result = []
    for line in tasmota_lines(app):
        if line.lower().startswith("backlog "):
            parts = [p for p in line[len("backlog ") :].split(";") if p.strip()]
            result.append([split_command(p) for p in parts])
        else:
            result.append([split_command(line)])
    return result


def tasmota_settings(app: Appliance) -> dict[str, str]:
    """Command name -> argument, the last one winning as on the device."""
    return {c.name: c.arg for group in backlogs(app) for c in group}


def template(app: Appliance) -> dict[str, Any]:
    data = json.loads(tasmota_settings(app)["Template"])
    assert isinstance(data, dict)
    return data


@each_appliance()
def test_tasmota_script_uses_only_documented_commands_within_backlog_limits(
    app: Appliance,
) -> None:
    """Every command is a known Tasmota command; a Backlog holds at most 30 and none nested."""
    groups = backlogs(app)
    assert groups
    for group in groups:
        assert len(group) <= BACKLOG_LIMIT
        for command in group:
            assert command.name in TASMOTA_COMMANDS, command
            assert command.name.lower() != "backlog"


@each_appliance()
def test_tasmota_script_sets_topic_telemetry_and_mqtt_placeholders(app: Appliance) -> None:
    """The %topic% is the device name, telemetry every 10 s, relay on at power-up, no secrets."""
    settings = tasmota_settings(app)
    assert settings["Topic"] == app.topics[Firmware.TASMOTA]
    assert settings["DeviceName"] == app.name
    assert settings["TelePeriod"] == "10"
    assert settings["PowerOnState"] == "1"
    assert settings["Module"] == "0"  # activates the stored template
    assert "FullTopic" not in settings  # default %prefix%/%topic%/ gives tele/<topic>/...
    for key in ("MqttHost", "MqttUser", "MqttPassword"):
        assert PLACEHOLDER.fullmatch(settings[key]), f"{key} must be a placeholder"
    assert int(settings["PowerDelta"]) > 100  # an absolute watt step, not a percentage


@each_appliance()
def test_tasmota_template_is_a_valid_esp8266_template_for_a_metering_plug(
    app: Appliance,
) -> None:
    """NAME/GPIO/FLAG/BASE only; 14 GPIO codes; one relay, a meter input on GPIO3, no DS18x20."""
    tpl = template(app)
    assert set(tpl) == {"NAME", "GPIO", "FLAG", "BASE"}
    assert isinstance(tpl["NAME"], str) and 0 < len(tpl["NAME"]) <= 60
    assert tpl["FLAG"] == 0
    assert tpl["BASE"] == 18  # Generic module
    gpio = tpl["GPIO"]
    assert len(gpio) == len(ESP8266_TEMPLATE_PINS)
    assert all(isinstance(code, int) and code >= 0 for code in gpio)
    pins = dict(zip(ESP8266_TEMPLATE_PINS, gpio, strict=True))
    assert list(pins.values()).count(RELAY1) == 1
    assert pins[3] == CSE7766_RX
    assert ENERGY_INPUTS & set(gpio)
    # The plug has no exposed, isolated GPIO: no temperature probe on it.
    assert DS18X20 not in gpio


def test_tasmota_template_is_stored_before_module_0_activates_it() -> None:
    for app in APPLIANCES:
        names = [c.name for group in backlogs(app) for c in group]
        assert names.index("Template") < names.index("Module")


def parse_rule(text: str) -> list[tuple[str, str]]:
    """'ON <trigger> DO <command> ENDON ...' as (trigger, command) pairs; all text consumed."""
    pattern = re.compile(r"ON\s+(\S+)\s+DO\s+(.+?)\s+ENDON\s*")
    rules, pos = [], 0
    while pos < len(text):
        match = pattern.match(text, pos)
        assert match, f"unparsable rule text at {text[pos:]!r}"
        rules.append((match.group(1), match.group(2)))
        pos = match.end()
    return rules


def test_hair_dryer_rules_publish_at_once_and_cut_the_dryer_after_30_minutes() -> None:
    """Rule1 (one-shot) forces telemetry on each on/off edge and runs the timer; Rule2 acts."""
    app = BY_KIND[ApplianceType.HAIR_DRYER]
    commands = [c for group in backlogs(app) for c in group]
    definitions = {c.name: c.arg for c in commands if c.name.startswith("Rule") and " " in c.arg}
    switches = {(c.name, c.arg) for c in commands if c.arg in ("0", "1", "5")}
    assert {("Rule1", "1"), ("Rule1", "5"), ("Rule2", "1")} <= switches

    rule1 = dict(parse_rule(definitions["Rule1"]))
    assert rule1["Energy#Power>100"] == "Backlog TelePeriod; RuleTimer1 1800"
    assert rule1["Energy#Power<20"] == "Backlog TelePeriod; RuleTimer1 0"
    rule2 = dict(parse_rule(definitions["Rule2"]))
    assert rule2["Rules#Timer=1"] == "Power1 0"
    assert rule2["Power1#State"] == "TelePeriod"


def test_only_the_hair_dryer_has_rules() -> None:
    for app in APPLIANCES:
        has_rules = any(c.name.startswith("Rule") for g in backlogs(app) for c in g)
        assert has_rules is (app.kind is ApplianceType.HAIR_DRYER), app.kind


# ----------------------------------------------------------------------------- ESPHome


@dataclass(frozen=True, slots=True)
class Tagged:
    """A value under an ESPHome-only YAML tag, kept as written."""

    tag: str
    value: str


class EsphomeLoader(yaml.SafeLoader):
    """SafeLoader that accepts ESPHome's !secret, !lambda and !include tags."""


def _construct_tagged(loader: yaml.SafeLoader, node: yaml.Node) -> Tagged:
    assert isinstance(node, yaml.ScalarNode)
    return Tagged(node.tag, loader.construct_scalar(node))


for _tag in ("!secret", "!lambda", "!include"):
    EsphomeLoader.add_constructor(_tag, _construct_tagged)


def substitute(value: Any, subs: dict[str, str]) -> Any:
    """Apply ESPHome `substitutions:` (${name} and $name) throughout the tree."""

    def text(s: str) -> str:
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: subs[m.group(1) or m.group(2)], s)

    if isinstance(value, str):
        return text(value)
    if isinstance(value, Tagged):
        return Tagged(value.tag, text(value.value))
    if isinstance(value, list):
        return [substitute(v, subs) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, subs) for k, v in value.items()}
    return value


@cache
def esphome(kind: ApplianceType) -> dict[str, Any]:
    raw = (BY_KIND[kind].folder / "esphome.yaml").read_text(encoding="utf-8")
    data = yaml.load(raw, Loader=EsphomeLoader)  # a SafeLoader subclass
    assert isinstance(data, dict)
    subs = {str(k): str(v) for k, v in (data.pop("substitutions", None) or {}).items()}
    result = substitute(data, subs)
    assert isinstance(result, dict)
    return result


def object_id(name: str) -> str:
    """ESPHome's MQTT object id: name lower-cased, spaces to '_', other odd characters '_'."""
    return re.sub(r"[^a-z0-9_-]", "_", name.lower().replace(" ", "_"))


def published_entities(config: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(component, object id) -> entity for every named, non-internal sensor and binary sensor.

    Platforms such as cse7766 or pulse_meter nest their sensors one level down.
    """
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for component in ("sensor", "binary_sensor"):
        for item in config.get(component) or []:
            nested = [v for v in item.values() if isinstance(v, dict)]
            for entity in (item, *nested):
                if "name" in entity and not entity.get("internal", False):
                    found[(component, object_id(entity["name"]))] = entity
    return found


def esphome_topics(app: Appliance) -> set[str]:
    prefix = esphome(app.kind)["mqtt"]["topic_prefix"]
    topics = {
        f"{prefix}/{component}/{oid}/state"
        for component, oid in published_entities(esphome(app.kind))
    }
    return topics | {f"{prefix}/status"}


def is_secret(value: Any) -> bool:
    return isinstance(value, Tagged) and value.tag == "!secret"


@each_appliance()
def test_esphome_mqtt_uses_the_dorm_prefix_secrets_and_status_birth_and_will(
    app: Appliance,
) -> None:
    config = esphome(app.kind)
    assert config["esphome"]["name"] == app.name
    assert "esp32" in config
    assert "api" not in config  # without an API client the node would reboot every 15 min
    assert is_secret(config["wifi"]["ssid"]) and is_secret(config["wifi"]["password"])
    mqtt = config["mqtt"]
    prefix = app.topics[Firmware.ESPHOME]
    assert mqtt["topic_prefix"] == prefix
    assert all(is_secret(mqtt[key]) for key in ("broker", "username", "password"))
    assert mqtt["discovery"] is False
    assert "log_topic" in mqtt and mqtt["log_topic"] is None
    for key, payload in (("birth_message", "online"), ("will_message", "offline")):
        assert mqtt[key] == {"topic": f"{prefix}/status", "payload": payload, "retain": True}


@each_appliance()
def test_esphome_publishes_exactly_the_object_ids_the_bridge_expects(app: Appliance) -> None:
    """Each required entity's name yields its object id, and its `id:` is that same word."""
    entities = published_entities(esphome(app.kind))
    sensors = {oid for component, oid in entities if component == "sensor"}
    binaries = {oid for component, oid in entities if component == "binary_sensor"}
    assert sensors == app.esphome_sensors
    assert binaries == app.esphome_binary
    for (_, oid), entity in entities.items():
        assert entity["id"] == oid


@each_appliance()
def test_esphome_meters_power_through_an_isolated_cse7766_uart_and_keeps_energy(
    app: Appliance,
) -> None:
    config = esphome(app.kind)
    uart = config["uart"]
    assert (uart["baud_rate"], uart["parity"]) == (4800, "EVEN")
    meters = [s for s in config["sensor"] if s["platform"] == "cse7766"]
    assert len(meters) == 1 and meters[0]["uart_id"] == uart["id"]
    (energy,) = [s for s in config["sensor"] if s.get("id") == "energy"]
    assert energy["platform"] == "integration" and energy["sensor"] == "power"
    assert (energy["time_unit"], energy["unit_of_measurement"]) == ("h", "kWh")
    assert energy["restore"] is True
    assert {"multiply": 0.001} in energy["filters"]


def test_water_dispenser_reads_a_ds18b20_and_counts_litres_across_reboots() -> None:
    config = esphome(ApplianceType.WATER_DISPENSER)
    assert config["one_wire"][0]["platform"] == "gpio"
    (probe,) = [s for s in config["sensor"] if s["platform"] == "dallas_temp"]
    assert probe["id"] == "boiler_temperature"
    (flow,) = [s for s in config["sensor"] if s["platform"] == "pulse_meter"]
    assert flow["total"]["id"] == "water_total"
    assert flow["total"]["unit_of_measurement"] == "L"
    restore = config["esphome"]["on_boot"]["then"][0]["pulse_meter.set_total_pulses"]
    assert restore["id"] == flow["id"]
    assert isinstance(restore["value"], Tagged) and restore["value"].tag == "!lambda"
    (saved,) = config["globals"]
    assert saved["restore_value"] is True and saved["id"] in restore["value"].value


# ----------------------------------------------------------------------------- Shelly


def shelly_request(app: Appliance) -> dict[str, Any]:
    data = json.loads((app.folder / "shelly.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@each_appliance()
def test_shelly_file_is_an_mqtt_setconfig_rpc_with_status_notifications(app: Appliance) -> None:
    request = shelly_request(app)
    assert request["method"] == "MQTT.SetConfig"
    assert isinstance(request["id"], int) and request["src"]
    config = request["params"]["config"]
    assert set(config) <= SHELLY_MQTT_KEYS
    assert config["topic_prefix"] == app.topics[Firmware.SHELLY]
    assert config["enable"] is True
    assert config["status_ntf"] is True and config["rpc_ntf"] is True
    assert config["use_client_cert"] is False
    assert PLACEHOLDER.fullmatch(config["user"]) and PLACEHOLDER.fullmatch(config["pass"])
    host, _, port = config["server"].rpartition(":")
    assert PLACEHOLDER.fullmatch(host) and port == "1883"


# ----------------------------------------------------------------------------- agreement


def configured_topic(app: Appliance, firmware: Firmware) -> str:
    """The topic / prefix as written in the firmware config itself."""
    if firmware is Firmware.TASMOTA:
        return tasmota_settings(app)["Topic"]
    if firmware is Firmware.ESPHOME:
        return str(esphome(app.kind)["mqtt"]["topic_prefix"])
    return str(shelly_request(app)["params"]["config"]["topic_prefix"])


@cache
def samples(kind: ApplianceType) -> list[dict[str, Any]]:
    data = json.loads((BY_KIND[kind].folder / "payloads.json").read_text(encoding="utf-8"))
    assert isinstance(data, list)
    return data


def readme(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def fenced(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


@each_appliance()
def test_configs_use_the_topics_the_bridge_is_configured_with(app: Appliance) -> None:
    for firmware, topic in app.topics.items():
        assert configured_topic(app, firmware) == topic


@each_appliance()
def test_readme_names_every_configured_topic_and_sample_topic(app: Appliance) -> None:
    text = readme(app.folder / "README.md")
    for firmware in Firmware:
        assert configured_topic(app, firmware) in text
    for sample in samples(app.kind):
        assert sample["topic"] in text, sample["topic"]


@each_appliance()
def test_readme_json_examples_are_exact_samples(app: Appliance) -> None:
    """Each ```json block in the README is, byte for byte, a payload in payloads.json."""
    payloads = {s["payload"] for s in samples(app.kind)}
    blocks = fenced(readme(app.folder / "README.md"), "json")
    assert blocks
    for block in blocks:
        assert block.strip() in payloads


@each_appliance()
def test_readme_bridge_snippet_is_a_valid_device_entry_for_each_option(app: Appliance) -> None:
    (block,) = [b for b in fenced(readme(app.folder / "README.md"), "yaml") if "devices:" in b]
    (entry,) = yaml.safe_load(block)["devices"]
    device = DeviceEntry.model_validate(entry)
    assert (device.id, device.kind) == (app.name, app.kind)
    options = {(device.firmware.value, device.topic)}
    options |= set(re.findall(r"#\s*or:\s*firmware:\s*(\w+),\s*topic:\s*(\S+)", block))
    assert options == {(f.value, t) for f, t in app.topics.items()}


def test_top_readme_lists_every_topic_and_a_valid_bridge_config() -> None:
    text = readme(CONFIGS / "README.md")
    for app in APPLIANCES:
        assert f"`{app.kind.value}/`" in text
        for topic in app.topics.values():
            assert f"`{topic}`" in text
    (block,) = [b for b in fenced(text, "yaml") if "devices:" in b]
    entries = [DeviceEntry.model_validate(e) for e in yaml.safe_load(block)["devices"]]
    assert {e.kind for e in entries} == set(ApplianceType)
    for entry in entries:
        assert entry.topic == BY_KIND[entry.kind].topics[entry.firmware]


# ----------------------------------------------------------------------------- payload samples


@each_appliance()
def test_payload_samples_are_well_formed(app: Appliance) -> None:
    entries = samples(app.kind)
    assert entries
    for entry in entries:
        assert {"firmware", "topic", "payload", "expect"} <= set(entry), entry
        assert set(entry) <= {"firmware", "topic", "payload", "expect", "note"}, entry
        firmware = Firmware(entry["firmware"])
        topic = entry["topic"]
        assert not set(topic) & {"+", "#"} and not topic.startswith("/")
        base = configured_topic(app, firmware)
        if firmware is Firmware.TASMOTA:
            assert topic.startswith((f"tele/{base}/", f"stat/{base}/")), topic
        else:
            assert topic.startswith(f"{base}/"), topic
        assert isinstance(entry["payload"], str)
        if entry["payload"].startswith("{"):
            assert isinstance(json.loads(entry["payload"]), dict)
        expect = entry["expect"]
        assert set(expect) <= set(CANONICAL_FIELDS), expect
        for field, value in expect.items():
            if field in BOOL_FIELDS:
                assert isinstance(value, bool), (field, value)
            else:
                assert isinstance(value, int | float) and not isinstance(value, bool)


@each_appliance()
def test_payload_samples_cover_every_topic_the_configs_produce(app: Appliance) -> None:
    by_firmware: dict[Firmware, list[dict[str, Any]]] = {f: [] for f in Firmware}
    for entry in samples(app.kind):
        by_firmware[Firmware(entry["firmware"])].append(entry)

    def payloads(firmware: Firmware, topic: str) -> set[str]:
        return {e["payload"] for e in by_firmware[firmware] if e["topic"] == topic}

    tasmota = configured_topic(app, Firmware.TASMOTA)
    assert payloads(Firmware.TASMOTA, f"tele/{tasmota}/LWT") == {"Online", "Offline"}
    assert payloads(Firmware.TASMOTA, f"tele/{tasmota}/SENSOR")

    prefix = configured_topic(app, Firmware.ESPHOME)
    assert {e["topic"] for e in by_firmware[Firmware.ESPHOME]} == esphome_topics(app)
    assert payloads(Firmware.ESPHOME, f"{prefix}/status") == {"online", "offline"}
    for oid in app.esphome_binary:
        assert payloads(Firmware.ESPHOME, f"{prefix}/binary_sensor/{oid}/state") == {"ON", "OFF"}

    shelly = configured_topic(app, Firmware.SHELLY)
    assert payloads(Firmware.SHELLY, f"{shelly}/online") == {"true", "false"}
    assert payloads(Firmware.SHELLY, f"{shelly}/status/{app.shelly_component}")


def _all_samples() -> list[tuple[Appliance, dict[str, Any]]]:
    return [(app, entry) for app in APPLIANCES for entry in samples(app.kind)]


def _sample_id(case: tuple[Appliance, dict[str, Any]]) -> str:
    app, entry = case
    return f"{app.kind.value}:{entry['topic']}={entry['payload'][:12]}"


@pytest.mark.parametrize("case", _all_samples(), ids=_sample_id)
def test_normaliser_extracts_exactly_what_each_sample_promises(
    case: tuple[Appliance, dict[str, Any]],
) -> None:
    """Expected fields equal the Reading's; the rest stay None; an empty expect means None."""
    app, entry = case
    firmware = Firmware(entry["firmware"])
    source = DeviceSource(app.name, firmware, configured_topic(app, firmware))
    reading = normalize(source, entry["topic"], entry["payload"].encode("utf-8"), AT)
    expect = entry["expect"]
    if not expect:
        assert reading is None
        return
    assert isinstance(reading, Reading)
    assert (reading.device_id, reading.at) == (app.name, AT)
    for field in CANONICAL_FIELDS:
        wanted, got = expect.get(field), getattr(reading, field)
        if wanted is None or isinstance(wanted, bool):
            assert got is wanted, field
        else:
            assert got == pytest.approx(wanted), field
