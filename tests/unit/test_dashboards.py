"""Grafana dashboards and provisioning: valid, on the dormguard datasource, and every Flux query
names only measurements, fields and tags the gateway writes (docs/timeseries.md).

What the gateway writes is not written down here: it is collected by running
``gateway.timeseries.mapping.points_for`` over one message of every model in the contract
registry, as the ingest pipeline calls it (with the topic and a receive time), and
``alert_points`` over an alert at every lifecycle event. The Alerts dashboard is also checked
against the schema documented in dashboards/README.md.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
import yaml

from contracts.access import Reason
from contracts.models import (
    AccessEvent,
    Availability,
    BridgeHealth,
    CardSwipe,
    Command,
    CommandResult,
    DeviceState,
    DeviceTelemetry,
    DoorEvent,
    GalleryAck,
    GalleryUpdate,
    Heartbeat,
    LatencyBreakdown,
    SecurityEvent,
    WireModel,
)
from contracts.registry import BRIDGE_MODELS, DEVICE_MODELS, GATE_MODELS
from contracts.topics import (
    DeviceAddress,
    GateAddress,
    ParsedTopic,
    bridge_topic,
    device_topic,
    gate_topic,
    parse_topic,
)
from gateway.alerts.lifecycle import AlertRecord, AlertState, acknowledge, clear
from gateway.alerts.types import AlertType, Severity
from gateway.timeseries import mapping
from gateway.timeseries.base import Point

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"
JSON_DIR = DASHBOARDS / "json"
DATASOURCE_FILE = DASHBOARDS / "provisioning" / "datasources" / "influxdb.yaml"
PROVIDER_FILE = DASHBOARDS / "provisioning" / "dashboards" / "dormguard.yaml"
DATASOURCE_UID = "dormguard-influx"
GRAFANA_DASHBOARD_DIR = "/var/lib/grafana/dashboards/dormguard"
EXPECTED_DASHBOARDS = {"gate-activity.json", "alerts.json", "appliances.json", "edge-health.json"}
DASHBOARD_FILES = sorted(JSON_DIR.glob("*.json"))

TS = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)
GATE = GateAddress("north", "b7", "main-door")
DEVICE = DeviceAddress("north", "b7", "r101", "washer-0042")

# --- the proposed alert measurement (dashboards/README.md, "Needs from the gateway") ----------

ALERT = "alert"
ALERT_DASHBOARD = "alerts.json"
ALERT_EVENTS = ("raised", "acknowledged", "escalated", "cleared")
PROPOSED_ALERT_TAGS = frozenset({"site", "building", "type", "severity", "event"})
PROPOSED_ALERT_FIELDS = frozenset(
    {
        "count",
        "silenced",
        "ack_seconds",
        "escalation_level",
        "open_seconds",
        "auto_cleared",
        "needs_review",
    }
)

# --- what the gateway writes ----------------------------------------------------------------


@dataclass
class Measurement:
    """Field and tag names of one measurement, and the closed vocabulary of some tags."""

    fields: set[str] = field(default_factory=set)
    tags: set[str] = field(default_factory=set)
    vocabulary: dict[str, set[str]] = field(default_factory=dict)


Schema = dict[str, Measurement]


def sample_messages() -> dict[type[WireModel], WireModel]:
    """One message per contract model, with every optional reading filled in."""
    gate = {"site": "north", "building": "b7", "gate_id": "main-door"}
    device = {"site": "north", "building": "b7", "room": "r101", "device_id": "washer-0042"}
    samples: list[WireModel] = [
        AccessEvent(
            ts=TS,
            producer="gate:north/b7/main-door",
            **gate,
            direction="in",
            decision="denied",
            method="face",
            reason="unknown_face",
            distance=0.61,
            margin=0.02,
            faces_in_view=2,
            frames_used=3,
            latency=LatencyBreakdown(
                detect_ms=8.0,
                encode_ms=80.0,
                match_ms=3.0,
                decide_ms=0.5,
                first_seen_to_decision_ms=240.0,
            ),
            seq=7,
        ),
        DoorEvent(
            ts=TS, producer="gate:north/b7/main-door", **gate, kind="held_open", open_for_s=40.0
        ),
        Availability(producer="gate:north/b7/main-door", state="offline", ts=TS),
        Heartbeat(
            ts=TS,
            producer="gate:north/b7/main-door",
            fps=7.0,
            last_frame_age_s=0.2,
            source_healthy=True,
            outbox_depth=4,
            gallery_version=12,
            face_path="ok",
            uptime_s=3600.0,
            alarms=["camera_dark"],
            rejected_messages=2,
        ),
        GalleryUpdate(
            producer="gateway", version=2, correlation_id="corr-1", blob_b64="AAAA", ts=TS
        ),
        GalleryAck(
            producer="gate:north/b7/main-door", correlation_id="corr-1", version=2, applied=True
        ),
        Command(producer="gateway", correlation_id="corr-2", command="unlock"),
        CommandResult(producer="gate:north/b7/main-door", correlation_id="corr-2", ok=True),
        CardSwipe(producer="reader-1", card_uid="04A1B2C3"),
        SecurityEvent(
            producer="gate:north/b7/main-door",
            site="north",
            building="b7",
            gate_id="main-door",
            kind="unsigned",
            target="command",
            command="unlock",
        ),
        DeviceState(
            ts=TS,
            producer="bridge:north/bridge-1",
            **device,
            kind="water_dispenser",
            status="heating",
            faults=["leak", "filter_exhausted"],
            power_w=1500.0,
            energy_kwh=12.5,
            temperature_c=88.0,
            remaining_s=120.0,
            sessions=3,
            filter_life_pct=40.0,
        ),
        DeviceTelemetry(
            ts=TS,
            producer="bridge:north/bridge-1",
            **device,
            kind="washer",
            power_w=1800.0,
            energy_kwh=12.5,
            voltage_v=229.8,
            current_a=7.9,
            temperature_c=41.0,
            water_l=3.5,
            leak=False,
            door_open=True,
        ),
        BridgeHealth(
            ts=TS,
            producer="bridge:north/bridge-1",
            received=100,
            normalized=95,
            rejected=5,
            unknown_topic=1,
            devices=12,
            offline_devices=1,
            faulty_devices=2,
            uptime_s=60.0,
        ),
    ]
    return {type(message): message for message in samples}


def registry_messages() -> Iterator[tuple[WireModel, ParsedTopic]]:
    """Every (topic, model) pair of the contract registry with its sample message."""
    samples = sample_messages()
    topics = (
        [(gate_topic(GATE, channel), model) for channel, model in GATE_MODELS.items()]
        + [(device_topic(DEVICE, channel), model) for channel, model in DEVICE_MODELS.items()]
        + [
            (bridge_topic("north", "bridge-1", channel), model)
            for channel, model in BRIDGE_MODELS.items()
        ]
    )
    for topic, model in topics:
        assert model in samples, f"no sample message for {model.__name__} (topic {topic})"
        yield samples[model], parse_topic(topic)


def _literal_values(message: WireModel, value: str) -> set[str] | None:
    """The Literal vocabulary of the message attribute a tag value came from, if it has one."""
    for name, info in type(message).model_fields.items():
        if getattr(message, name) == value and get_origin(info.annotation) is Literal:
            return {str(v) for v in get_args(info.annotation)}
    return None


def _collect(schema: Schema, points: list[Point], source: WireModel | None = None) -> None:
    for point in points:
        entry = schema.setdefault(point.measurement, Measurement())
        entry.fields |= set(point.fields)
        entry.tags |= set(point.tags)
        if source is None:
            continue
        for tag, value in point.tags.items():
            vocabulary = _literal_values(source, value)
            if vocabulary is not None:
                entry.vocabulary.setdefault(tag, set()).update(vocabulary)


def alert_records() -> dict[str, AlertRecord]:
    """The alert after each proposed lifecycle event."""
    active = AlertRecord(
        id=1,
        type=AlertType.DOOR_HELD_OPEN,
        originator="gate:north/b7/main-door",
        site="north",
        building="b7",
        severity=Severity.WARNING,
        title="door held open",
        detail={},
        state=AlertState.ACTIVE,
        condition_active=True,
        count=1,
        first_at=TS,
        last_at=TS,
        annunciated_at=TS,
    )
    later = TS + timedelta(minutes=3)
    acked = acknowledge(active, "guard1", later)
    return {
        "raised": active,
        "acknowledged": acked,
        "escalated": replace(active, escalation_level=1, escalated_at=later),
        "cleared": clear(acked, "guard1", later + timedelta(minutes=1)),
    }


@functools.cache
def written_schema() -> Schema:
    """Measurement -> fields, tags and tag vocabularies, from the gateway's own mapping."""
    schema: Schema = {}
    for message, topic in registry_messages():
        _collect(schema, mapping.points_for(message, topic=topic, received_at=TS), message)
    assert ALERT in mapping.MEASUREMENTS
    for event, record in alert_records().items():
        _collect(schema, mapping.alert_points(event, record, TS + timedelta(minutes=5)))
    # Tags whose vocabulary is not a Literal of the contract.
    if "access" in schema:
        schema["access"].vocabulary["reason"] = {reason.value for reason in Reason}
    if ALERT in schema:
        alert_vocabulary = proposed_alert_schema()[ALERT].vocabulary
        for tag, values in alert_vocabulary.items():
            schema[ALERT].vocabulary.setdefault(tag, set()).update(values)
    return schema


def proposed_alert_schema() -> Schema:
    """The alert measurement as proposed to the gateway (dashboards/README.md)."""
    return {
        ALERT: Measurement(
            fields=set(PROPOSED_ALERT_FIELDS),
            tags=set(PROPOSED_ALERT_TAGS),
            vocabulary={
                "type": {t.value for t in AlertType},
                "severity": {s.name.lower() for s in Severity},
                "event": set(ALERT_EVENTS),
            },
        )
    }


# --- reading dashboards and Flux ---------------------------------------------------------------

MEASUREMENT_RE = re.compile(r'\br\._measurement\s*==\s*"([^"]*)"')
FIELD_RE = re.compile(r'\br\._field\s*==\s*"([^"]*)"')
COLUMN_RE = re.compile(r'\br(?:\.([A-Za-z_]\w*)|\[\s*"([^"]+)"\s*\])')
COMPARISON_RE = re.compile(r'\br(?:\.([A-Za-z_]\w*)|\[\s*"([^"]+)"\s*\])\s*==\s*"([^"]*)"')
COLUMN_LIST_RE = re.compile(r"\b(?:columns|rowKey|columnKey)\s*:\s*\[([^\]]*)\]")
TAG_VALUES_RE = re.compile(r'schema\.tagValues\((?:[^()]|\([^()]*\))*?\btag\s*:\s*"([^"]+)"', re.S)
GRAFANA_VARIABLE_RE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
STRING_RE = re.compile(r'"([^"]*)"')
RECORD_KEY_RE = re.compile(r"\s*(\w+)\s*:")
NEW_COLUMN_ARG_RE = re.compile(r'\b(?:columnName|as)\s*:\s*"(\w+)"')
CLOSE = {"(": ")", "[": "]", "{": "}"}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def query_variables(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in dashboard["templating"]["list"] if v["type"] == "query"]


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, Flux) for every panel target and query variable."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} target {target['refId']}", target["query"]
    for variable in query_variables(dashboard):
        yield f"variable {variable['name']!r}", variable["query"]


def without_grafana_variables(flux: str) -> str:
    """Grafana's ${name:format} would read as a record literal; comments as code."""
    flux = re.sub(r"//[^\n]*", "", flux)
    return re.sub(r"\$\{[^}]*\}", "grafana_variable", flux)


def _split_top_level(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char in CLOSE:
            depth += 1
        elif char in CLOSE.values():
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def _brace_body(text: str, start: int) -> str:
    depth = 1
    for index in range(start, len(text)):
        if text[index] in CLOSE:
            depth += 1
        elif text[index] in CLOSE.values():
            depth -= 1
            if depth == 0:
                return text[start:index]
    raise AssertionError(f"unbalanced braces in {text!r}")


def created_columns(flux: str) -> set[str]:
    """Columns the query makes itself: record keys ({r with k: ...}) and columnName/as args."""
    flux = without_grafana_variables(flux)
    names = set(NEW_COLUMN_ARG_RE.findall(flux))
    for brace in re.finditer(r"\{", flux):
        body = re.sub(r"^\s*\w+\s+with\b", "", _brace_body(flux, brace.end()))
        for part in _split_top_level(body):
            key = RECORD_KEY_RE.match(part)
            if key:
                names.add(key.group(1))
    return names


def problems(flux: str, schema: Schema) -> list[str]:
    """Everything a query names that the schema does not have (empty when the query is fine)."""
    flux = without_grafana_variables(flux)
    found: list[str] = []
    measurements = set(MEASUREMENT_RE.findall(flux))
    if not measurements:
        return ['no r._measurement == "..." filter']
    for name in sorted(measurements - set(schema)):
        found.append(f"measurement {name!r} is not written")
    known = [schema[name] for name in measurements if name in schema]
    fields = set().union(*(m.fields for m in known))
    tags = set().union(*(m.tags for m in known))
    for name in sorted(set(FIELD_RE.findall(flux)) - fields):
        found.append(f"field {name!r} is not written to {sorted(measurements)}")
    columns = {a or b for a, b in COLUMN_RE.findall(flux)}
    for names in COLUMN_LIST_RE.findall(flux):
        columns |= set(STRING_RE.findall(names))
    columns |= set(TAG_VALUES_RE.findall(flux))
    allowed = tags | created_columns(flux)
    if re.search(r'columnKey\s*:\s*\[\s*"_field"\s*\]', flux):
        allowed |= fields  # after pivoting on _field, fields are columns
    for name in sorted(columns):
        if not name.startswith("_") and name not in allowed:
            found.append(f"tag {name!r} is not written to {sorted(measurements)}")
    for a, b, value in COMPARISON_RE.findall(flux):
        tag = a or b
        vocabularies = [m.vocabulary[tag] for m in known if tag in m.vocabulary]
        if vocabularies and not any(value in v for v in vocabularies):
            found.append(f"tag {tag} is never {value!r}")
    return found


def dashboard_param(path: Path) -> Any:
    return pytest.param(path, id=path.stem)


# --- the checker itself ----------------------------------------------------------------------


def test_schema_is_collected_from_every_measurement_the_gateway_writes() -> None:
    schema = written_schema()
    assert set(mapping.MEASUREMENTS) <= set(schema)
    assert {"gate", "decision", "reason"} <= schema["access"].tags
    assert "fault_leak" in schema["appliance_state"].fields
    assert schema["access"].vocabulary["decision"] == {"granted", "denied"}
    assert "washer" in schema["appliance"].vocabulary["device_type"]


def test_checker_flags_unknown_measurements_fields_tags_and_tag_values() -> None:
    """The extraction must see every kind of reference, or a passing dashboard proves nothing."""
    bad = """
    from(bucket: v.defaultBucket)
      |> range(start: v.timeRangeStart, stop: v.timeRangeStop)
      |> filter(fn: (r) => r._measurement == "access" and r._field == "person_count")
      |> filter(fn: (r) => r.person_id == "x" and r["device"] =~ /^${device:regex}$/)
      |> filter(fn: (r) => r.decision == "allowed")
      |> group(columns: ["gate", "room"])
    """
    schema = written_schema()
    assert problems(bad, schema) == [
        "field 'person_count' is not written to ['access']",
        "tag 'device' is not written to ['access']",
        "tag 'person_id' is not written to ['access']",
        "tag 'room' is not written to ['access']",
        "tag decision is never 'allowed'",
    ]
    assert problems('from(bucket: "b") |> filter(fn: (r) => r._measurement == "cpu")', schema)
    assert problems('from(bucket: "b") |> range(start: -1h)', schema)


def test_checker_accepts_columns_the_query_creates() -> None:
    flux = """
    from(bucket: v.defaultBucket)
      |> filter(fn: (r) => r._measurement == "appliance_state" and r._field == "running")
      |> map(fn: (r) => ({r with busy_s: float(v: r._value)}))
      |> reduce(identity: {total_s: 0.0}, fn: (r, accumulator) => ({total_s: r.busy_s}))
      |> filter(fn: (r) => r.total_s > 0.0 and r.status == "running")
    """
    assert problems(flux, written_schema()) == []


# --- dashboards --------------------------------------------------------------------------------


def test_there_is_one_dashboard_per_topic() -> None:
    assert {path.name for path in DASHBOARD_FILES} == EXPECTED_DASHBOARDS


def test_dashboard_uids_are_unique() -> None:
    uids = [load(path)["uid"] for path in DASHBOARD_FILES]
    assert len(uids) == len(set(uids)), uids


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_dashboard_is_a_provisionable_grafana_dashboard(path: Path) -> None:
    dashboard = load(path)
    assert dashboard.get("id") is None, "a provisioned dashboard must not carry a database id"
    assert re.fullmatch(r"dormguard-[a-z-]+", dashboard["uid"])
    assert len(dashboard["uid"]) <= 40
    assert dashboard["title"].startswith("dormguard / ")
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["time"]["from"].startswith("now-") and dashboard["time"]["to"] == "now"
    assert "dormguard" in dashboard["tags"]
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), ids
    for panel in panels(dashboard):
        assert panel["title"].isascii() and panel["title"].strip(), panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, (panel["title"], grid)


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_every_panel_queries_the_dormguard_datasource(path: Path) -> None:
    dashboard = load(path)
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        title = panel["title"]
        assert panel["datasource"] == {"type": "influxdb", "uid": DATASOURCE_UID}, title
        assert panel["targets"], f"{title}: no target"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), title
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE_UID, title
            flux = target["query"]
            assert "from(bucket: v.defaultBucket)" in flux, title
            assert "range(start: " in flux, title
            assert "v.timeRangeStart" in flux and "v.timeRangeStop" in flux, title
    for variable in query_variables(dashboard):
        assert variable["datasource"]["uid"] == DATASOURCE_UID, variable["name"]


@pytest.mark.parametrize("path", [dashboard_param(p) for p in DASHBOARD_FILES])
def test_queries_name_only_measurements_fields_and_tags_the_gateway_writes(path: Path) -> None:
    found = [
        f"{where}: {problem}"
        for where, flux in queries(load(path))
        for problem in problems(flux, written_schema())
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("path", [dashboard_param(p) for p in DASHBOARD_FILES])
def test_template_variables_list_tags_the_gateway_writes(path: Path) -> None:
    schema = written_schema()
    for variable in query_variables(load(path)):
        flux = without_grafana_variables(variable["query"])
        (tag,) = TAG_VALUES_RE.findall(flux)
        assert tag == variable["name"], "a variable is named after the tag it lists"
        for measurement in MEASUREMENT_RE.findall(flux):
            assert tag in schema.get(measurement, Measurement()).tags, (measurement, tag)


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_queries_use_only_the_dashboards_own_variables(path: Path) -> None:
    dashboard = load(path)
    defined = {variable["name"] for variable in dashboard["templating"]["list"]}
    for where, flux in queries(dashboard):
        used = {a or b for a, b in GRAFANA_VARIABLE_RE.findall(flux)}
        assert used <= defined, (where, used - defined)
    for variable in query_variables(dashboard):
        assert variable["multi"] and variable["includeAll"], variable["name"]


def test_alerts_dashboard_names_only_the_proposed_alert_schema() -> None:
    """Checked against the proposal until the gateway writes it (then also the test above)."""
    schema = {**written_schema(), **proposed_alert_schema()}
    found = [
        f"{where}: {problem}"
        for where, flux in queries(load(JSON_DIR / ALERT_DASHBOARD))
        for problem in problems(flux, schema)
    ]
    assert not found, "\n".join(found)


def test_readme_lists_the_proposed_alert_schema() -> None:
    readme = (DASHBOARDS / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Needs from the gateway", 1)[1]
    for name in sorted(PROPOSED_ALERT_TAGS | PROPOSED_ALERT_FIELDS | set(ALERT_EVENTS)):
        assert f"`{name}`" in section, name
    assert "docs/timeseries.md" in readme


# --- provisioning ------------------------------------------------------------------------------


def test_datasource_is_influxdb_flux_with_settings_from_the_environment() -> None:
    config = yaml.safe_load(DATASOURCE_FILE.read_text(encoding="utf-8"))
    assert config["apiVersion"] == 1
    (source,) = config["datasources"]
    assert source["uid"] == DATASOURCE_UID
    assert source["type"] == "influxdb"
    assert source["url"] == "${INFLUX_URL}"
    assert source["jsonData"]["version"] == "Flux"
    assert source["jsonData"]["organization"] == "${INFLUX_ORG}"
    assert source["jsonData"]["defaultBucket"] == "${INFLUX_BUCKET}"
    assert source["secureJsonData"] == {"token": "${INFLUX_TOKEN}"}
    assert "token" not in source["jsonData"], "the token belongs in secureJsonData"


def test_dashboard_provider_loads_the_mounted_json_folder_into_dormguard() -> None:
    config = yaml.safe_load(PROVIDER_FILE.read_text(encoding="utf-8"))
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "dormguard"
    assert provider["options"]["path"] == GRAFANA_DASHBOARD_DIR
    assert provider["allowUiUpdates"] is False
