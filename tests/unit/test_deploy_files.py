"""The deployment files in deploy/ are consistent with each other and with the real models.

Rules checked: the compose file parses, every file it mounts from the repository exists and every
generated secret it mounts is one issue-credentials.py makes for the example inventory; the
compose example configs validate against GatewayConfig, GateConfig and DevicesConfig and use the
broker accounts the inventory creates; the systemd units have the keys a hardened daemon needs;
the production mosquitto.conf keeps its security settings and has no plain listener; the
credentials script's inventory reader, ACL rendering and password hashing behave.
"""

from __future__ import annotations

import base64
import configparser
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from contracts.yamlconfig import load_yaml_model
from edge.devices.config import DevicesConfig
from edge.gate.config import GateConfig
from gateway.config import GatewayConfig

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
MOSQUITTO_DIR = DEPLOY / "mosquitto"
SERVICES = ("mosquitto", "influxdb", "grafana", "gateway", "gate", "devices")


@pytest.fixture(scope="module")
def issue() -> ModuleType:
    """deploy/mosquitto/issue-credentials.py as a module (its name has a dash)."""
    spec = importlib.util.spec_from_file_location(
        "issue_credentials", MOSQUITTO_DIR / "issue-credentials.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["issue_credentials"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    values = {}
    for line in (COMPOSE_DIR / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((COMPOSE_DIR / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def site_users(issue: ModuleType) -> set[str]:
    site = issue.parse_site(issue.load_inventory_file(MOSQUITTO_DIR / "site.example.yaml"))
    return {c.user for c in issue.clients_of(site)}


def expand(text: str, env: dict[str, str]) -> str:
    """Compose-style ${VAR}, ${VAR:-default} and ${VAR:?error} with the .env example's values."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2) or "", match.group(3) or ""
        value = env.get(name, "")
        if op == ":-" and not value:
            return arg
        return value

    return re.sub(r"\$\{([A-Z_][A-Z0-9_]*)(:-|:\?)?([^}]*)\}", one, text)


def bind_mounts(service: dict[str, Any], env: dict[str, str]) -> list[tuple[str, str]]:
    mounts = []
    for entry in service.get("volumes", []):
        source, _, rest = expand(entry, env).partition(":")
        if source.startswith((".", "/")):
            mounts.append((source, rest.split(":")[0]))
    return mounts


# ----------------------------------------------------------------------------- compose


def test_compose_has_every_service_with_a_healthcheck_and_a_restart_policy(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert set(SERVICES) <= set(services)
    for name in SERVICES:
        assert "healthcheck" in services[name], name
        assert services[name].get("restart") == "unless-stopped", name


def test_every_mounted_repository_file_exists_and_every_secret_is_one_the_script_issues(
    compose: dict[str, Any], env: dict[str, str], site_users: set[str]
) -> None:
    for name, service in compose["services"].items():
        for source, target in bind_mounts(service, env):
            path = (COMPOSE_DIR / source).resolve()
            relative = path.relative_to(REPO)
            if relative.parts[:3] == ("deploy", "compose", "secrets"):
                inside = relative.parts[3:]
                if inside[0] == "clients" and inside[1].endswith(".password"):
                    assert inside[1].removesuffix(".password") in site_users, (name, source)
                else:
                    assert inside in (
                        ("broker",),
                        ("clients", "ca.crt"),
                        ("gallery.key",),  # dormguard gallery keygen (compose header)
                        ("command-signing.key",),  # dormguard keys generate (compose header)
                    ), (name, source)
            else:
                assert path.exists(), f"{name}: {source} -> {target} does not exist"


def test_grafana_mounts_the_dashboards_where_the_provider_reads_them(
    compose: dict[str, Any], env: dict[str, str]
) -> None:
    mounts = dict(bind_mounts(compose["services"]["grafana"], env))
    assert mounts["../../dashboards/provisioning"] == "/etc/grafana/provisioning"
    provider_dir = REPO / "dashboards" / "provisioning" / "dashboards"
    if provider_dir.exists():  # written alongside; check the path agrees when it is there
        paths = {
            p["options"]["path"]
            for f in provider_dir.glob("*.y*ml")
            for p in yaml.safe_load(f.read_text()).get("providers", [])
        }
        assert mounts["../../dashboards/json"] in paths


def test_gateway_image_is_built_from_the_compose_dockerfile(compose: dict[str, Any]) -> None:
    build = compose["services"]["gateway"]["build"]
    context = (COMPOSE_DIR / build["context"]).resolve()
    assert context == REPO
    dockerfile = (context / build["dockerfile"]).read_text()
    assert "face-recognition==1.3.0" in dockerfile and "--no-deps" in dockerfile
    for service in ("gateway", "gate", "devices"):
        assert compose["services"][service]["image"] == "dormguard:local"
    for copied in re.findall(r"^COPY (\S+)", dockerfile, flags=re.M):
        assert (REPO / copied).exists(), copied


# ----------------------------------------------------------------------------- example configs


def test_compose_configs_validate_against_the_real_models(env: dict[str, str]) -> None:
    gateway = load_yaml_model(COMPOSE_DIR / "gateway.yaml", GatewayConfig)
    gate = load_yaml_model(COMPOSE_DIR / "gate.yaml", GateConfig)
    devices = load_yaml_model(COMPOSE_DIR / "devices.yaml", DevicesConfig)
    assert gateway.site == gate.site == devices.site == env["SITE"]
    assert (gate.building, gate.gate.id) == (env["GATE_BUILDING"], env["GATE_ID"])
    assert devices.bridge_id == env["BRIDGE_ID"]
    assert (gate.building, gate.gate.id) in {(g.building, g.id) for g in gateway.gates}


def test_compose_configs_use_the_issued_accounts_files_and_tls(
    site_users: set[str], env: dict[str, str]
) -> None:
    site = env["SITE"]
    expected = {
        "gateway.yaml": (GatewayConfig, f"gateway-{site}-gw1"),
        "gate.yaml": (GateConfig, f"gate-{site}-{env['GATE_BUILDING']}-{env['GATE_ID']}"),
        "devices.yaml": (DevicesConfig, f"bridge-{site}-{env['BRIDGE_ID']}"),
    }
    for name, (model, user) in expected.items():
        config: Any = load_yaml_model(COMPOSE_DIR / name, model)
        assert config.mqtt.username == user and user in site_users, name
        assert config.mqtt.password is not None and config.mqtt.password.file is not None, name
        assert config.mqtt.tls is not None and config.mqtt.port == 8883, name
        assert config.mqtt.host == "mosquitto", name


def test_bridge_config_lists_the_devices_the_broker_lets_it_read(issue: ModuleType) -> None:
    site = issue.parse_site(issue.load_inventory_file(MOSQUITTO_DIR / "site.example.yaml"))
    devices = load_yaml_model(COMPOSE_DIR / "devices.yaml", DevicesConfig)
    (bridge,) = [b for b in site.bridges if b.bridge_id == devices.bridge_id]
    assert {(d.id, d.firmware, d.topic) for d in bridge.devices} == {
        (d.id, d.firmware.value, d.topic) for d in devices.devices
    }


# ----------------------------------------------------------------------------- systemd


@pytest.mark.parametrize("daemon", ["gate", "devices", "gateway"])
def test_systemd_unit_parses_and_is_hardened(daemon: str) -> None:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((DEPLOY / "systemd" / f"dormguard-{daemon}.service").read_text())
    assert parser["Unit"]["Description"]
    service = parser["Service"]
    assert f" {daemon} --config /etc/dormguard/" in service["ExecStart"]
    assert service["ExecStart"].startswith("/opt/dormguard/.venv/bin/dormguard ")
    assert "validate-config" in service["ExecStartPre"]
    assert service.get("User") or service.get("DynamicUser") == "yes"
    assert service["Restart"] == "always"
    assert service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] == "true"
    assert service["StateDirectory"]
    assert "OPENBLAS_NUM_THREADS=1" in service["Environment"]
    assert parser["Install"]["WantedBy"] == "multi-user.target"


# ----------------------------------------------------------------------------- mosquitto


def test_production_mosquitto_conf_keeps_its_security_settings_and_has_no_plain_listener() -> None:
    """Anonymous off, one account set for every listener, and a single listener, 8883 with TLS:
    no plain listener, not even on loopback (operators use TLS on the broker host too)."""
    lines = [
        line.strip()
        for line in (MOSQUITTO_DIR / "mosquitto.conf").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    options: dict[str, list[str]] = {}
    for line in lines:
        key, _, value = line.partition(" ")
        options.setdefault(key, []).append(value.strip())
    assert options["allow_anonymous"] == ["false"]
    assert options["per_listener_settings"] == ["false"]
    assert options["password_file"] and options["acl_file"]
    assert options["listener"] == ["8883"]  # the TLS listener only: no plain one
    assert options["tls_version"] == ["tlsv1.2"]
    assert {"cafile", "certfile", "keyfile"} <= set(options)
    assert options["persistence"] == ["true"]
    assert int(options["max_queued_messages"][0]) >= 100_000
    assert int(options["max_inflight_messages"][0]) > 20
    assert options["persistent_client_expiration"]


def test_acl_template_has_a_block_for_every_kind_of_client(issue: ModuleType) -> None:
    template = issue.load_template(MOSQUITTO_DIR / "acl.template")
    needed = {"gateway", "gate", "gate.relay", "gate.contact", "reader", "bridge", "monitor"}
    for firmware in issue.FIRMWARES:
        needed |= {f"bridge.{firmware}", f"device.{firmware}"}
    assert needed <= set(template)
    starts_a_user = ["gateway", "gate", "reader", "bridge", "monitor"]
    starts_a_user += [f"device.{f}" for f in issue.FIRMWARES]
    for name in starts_a_user:
        assert template[name][0] == "user {user}", name


def test_rendered_acl_gives_each_gate_only_its_own_topics(issue: ModuleType) -> None:
    site = issue.parse_site(issue.load_inventory_file(MOSQUITTO_DIR / "site.example.yaml"))
    acl = issue.render_acl(
        site, issue.clients_of(site), issue.load_template(MOSQUITTO_DIR / "acl.template")
    )
    blocks = {b.splitlines()[0]: b.splitlines()[1:] for b in acl.split("\n\n") if b.strip()}
    gate = blocks["user gate-campus-B1-B1-main"]
    assert "topic write dorm/campus/B1/gate/B1-main/event" in gate
    assert "topic write cmnd/b1-main-relay/POWER" in gate
    assert all("/B1-main/" in line or "b1-main-relay" in line for line in gate)
    assert not any("+" in line or "#" in line for line in gate)


# ----------------------------------------------------------------------------- the script


def test_builtin_inventory_reader_agrees_with_pyyaml(issue: ModuleType) -> None:
    text = (MOSQUITTO_DIR / "site.example.yaml").read_text()
    assert issue.parse_simple_yaml(text) == yaml.safe_load(text)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("site: a\n\tbroker: b\n", "tabs"),
        ("site: {a: 1}\n", "PyYAML"),
        ("site: a\nsite: b\n", "duplicate key"),
        ("site: a\n  broker: b\n", "indentation"),
    ],
)
def test_builtin_inventory_reader_names_the_problem(
    issue: ModuleType, text: str, problem: str
) -> None:
    with pytest.raises(issue.InventoryError, match=problem):
        issue.parse_simple_yaml(text)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"site": "bad site"}, "not a valid name"),
        ({"gates": [{"building": "a-b", "gate_id": "c"}, {"building": "a", "gate_id": "b-c"}]},
         "created twice"),
        ({"devices": [{"id": "d1", "firmware": "zigbee", "topic": "x"}]}, "not one of"),
        ({"devices": [{"id": "d1", "firmware": "tasmota", "topic": "a/#"}]}, "usable topic"),
        ({"gateways": [{"replica": "gw1", "extra": 1}]}, "unknown key"),
    ],
)  # fmt: skip
def test_inventory_errors_name_the_entry(
    issue: ModuleType, change: dict[str, Any], problem: str
) -> None:
    data = {"site": "campus", "broker": {"hostnames": ["mqtt"]}, **change}
    with pytest.raises(issue.InventoryError, match=problem):
        issue.clients_of(issue.parse_site(data))


def test_builtin_password_hash_is_what_mosquitto_passwd_writes(
    issue: ModuleType, tmp_path: Path
) -> None:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.skip("mosquitto_passwd is not installed")
    plain = tmp_path / "passwd"
    plain.write_text("alice:correct horse battery\n")
    subprocess.run([tool, "-U", str(plain)], check=True, capture_output=True)
    stored = plain.read_text().strip().split(":", 1)[1]
    _, kind, iterations, salt_b64, _ = stored.split("$")
    assert kind == "7"
    salt = base64.b64decode(salt_b64)
    assert issue.mosquitto_hash("correct horse battery", salt, int(iterations)) == stored
