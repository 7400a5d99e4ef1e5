"""`dormguard validate-config` run as a real process: exit codes and what the operator reads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gatewaykit import minimal_gateway_yaml
from tests.keys import signing_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "gate.example.yaml"
MARK = "# <-"


def validate_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dormguard.cli", "validate-config", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def broken_example(tmp_path: Path, old: str, new: str) -> tuple[Path, int]:
    """A copy of the example with one line replaced; returns it and that line's number."""
    text = EXAMPLE.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur once in the example"
    text = text.replace(old, f"{new}  {MARK}")
    line = next(n for n, row in enumerate(text.splitlines(), start=1) if MARK in row)
    path = tmp_path / "gate.yaml"
    path.write_text(text, encoding="utf-8")
    return path, line


def test_example_config_is_valid_and_exits_0() -> None:
    result = validate_config(EXAMPLE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"{EXAMPLE}: valid gate configuration for gate:campus/B1/B1-main"
    )
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("old", "new", "field", "cause"),
    [
        pytest.param(
            "heartbeat_s: 10.0 # seconds between health messages",
            "heartbeat_secs: 10.0",
            "heartbeat_secs",
            "Extra inputs are not permitted",
            id="unknown-top-level-key",
        ),
        pytest.param(
            "  keepalive_s: 30 # 5-3600 seconds",
            "  keep_alive_s: 30",
            "mqtt.keep_alive_s",
            "Extra inputs are not permitted",
            id="unknown-nested-key",
        ),
        pytest.param(
            "  port: 8883 # 1-65535 (default 1883); the production broker: TLS on 8883 only",
            "  port: eighty-eight-eighty-three",
            "mqtt.port",
            "valid integer",
            id="wrong-type",
        ),
        pytest.param(
            "  kind: camera # camera, stream, file or folder",
            "  kind: webcam",
            "source.kind",
            "Input should be",
            id="bad-enum",
        ),
        pytest.param(
            '    start: "23:00" # HH:MM local time',
            '    start: "25:00"',
            "policy.curfew.start",
            "HH:MM",
            id="bad-curfew-time",
        ),
        pytest.param(
            "  timezone: Asia/Shanghai # IANA time zone of the curfew times",
            "  timezone: Asia/Beijing",
            "policy.timezone",
            "unknown time zone 'Asia/Beijing'",
            id="unknown-timezone",
        ),
        pytest.param(
            "  id: B1-main # unique within the building",
            "  id: B1/main",
            "gate.id",
            "not a valid topic segment",
            id="gate-id-not-a-topic-segment",
        ),
    ],
)
def test_broken_config_exits_2_naming_line_and_field(
    tmp_path: Path, old: str, new: str, field: str, cause: str
) -> None:
    path, line = broken_example(tmp_path, old, new)
    result = validate_config(path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"line {line}: {field}: " in result.stderr
    assert cause in result.stderr
    assert "Traceback" not in result.stderr


def test_mqtt_relay_without_relay_topic_exits_2_pointing_at_door(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    text = text.replace("door:\n  kind: simulated", f"door:  {MARK}\n  kind: mqtt_relay")
    line = next(n for n, row in enumerate(text.splitlines(), start=1) if MARK in row)
    path = tmp_path / "gate.yaml"
    path.write_text(text, encoding="utf-8")
    result = validate_config(path)
    assert result.returncode == 2
    expected = f"line {line}: door: Value error, door kind 'mqtt_relay' needs 'relay_topic'"
    assert expected in result.stderr


def test_yaml_syntax_error_exits_2_with_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text("site: campus\ngate:\n  id: [B1-main\nbuilding: B1\n", encoding="utf-8")
    result = validate_config(path)
    assert result.returncode == 2
    assert "line 4, column 9: YAML syntax error" in result.stderr


def test_missing_file_exits_2_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    result = validate_config(path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{path}: invalid configuration:")
    assert "cannot read file: No such file or directory" in result.stderr


def test_non_utf8_file_exits_2_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_bytes(
        EXAMPLE.read_text(encoding="utf-8").replace("campus", "caf\xe9").encode("latin-1")
    )
    result = validate_config(path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


GATEWAY_EXAMPLE = REPO / "examples" / "gateway.example.yaml"


def test_gateway_example_is_recognised_and_valid() -> None:
    result = validate_config(GATEWAY_EXAMPLE)
    assert result.returncode == 0, result.stderr
    assert "valid gateway configuration" in result.stdout


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ("  port: 8883", "  port: 99999", "port"),
        ('  curfew: "23:00"', '  curfew: "25:00"', "curfew"),
        ("  timezone: Asia/Shanghai", "  timezone: Mars/Olympus", "time zone"),
        ("  shared_group: null ", "  shared_group: 'a/b' ", "shared"),
        ("  - {building: b2, id: main, direction: in}", "  - {building: b9, id: main}", "b9"),
        ("  unknown_face_count: 3 ", "  unknown_face_count: 0 ", "unknown_face_count"),
    ],
)
def test_broken_gateway_config_exits_2_naming_the_problem(
    tmp_path: Path, old: str, new: str, words: str
) -> None:
    text = GATEWAY_EXAMPLE.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur once in the example"
    path = tmp_path / "gateway.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    result = validate_config(path)
    assert result.returncode == 2
    assert words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_gateway_refuses_a_placeholder_influx_token_in_production(tmp_path: Path) -> None:
    from gateway.app import build_gateway
    from gateway.config import GatewayConfig

    secret = tmp_path / "token"
    secret.write_text("change-me\n")
    config = GatewayConfig.model_validate(
        {
            "site": "campus",
            "command_signing": signing_config(),
            "database": {"url": f"sqlite:///{tmp_path / 'gateway.db'}"},
            "timeseries": {
                "sqlite": {"path": str(tmp_path / "s.db")},
                "influx": {
                    "url": "http://127.0.0.1:1",
                    "org": "o",
                    "bucket": "b",
                    "token": {"file": str(secret)},
                },
            },
        }
    )
    with pytest.raises(ValueError, match="placeholder"):
        build_gateway(config)


def test_user_create_makes_the_first_admin_who_can_log_in(tmp_path: Path) -> None:
    """`dormguard user create` (password from a file) makes an admin; weak passwords refused."""
    import os

    from fastapi.testclient import TestClient

    config = minimal_gateway_yaml(tmp_path)
    secret = tmp_path / "admin-password"
    secret.write_text("correct horse battery staple\n")
    base = [sys.executable, "-m", "dormguard.cli", "user", "create", "--config", str(config)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    made = subprocess.run(
        [*base, "--username", "admin", "--role", "admin", "--password-file", str(secret)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    weak = tmp_path / "weak"
    weak.write_text("changeme\n")
    refused = subprocess.run(
        [*base, "--username", "guard", "--role", "guard", "--password-file", str(weak)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert refused.returncode == 2
    assert "password" in refused.stderr.lower() and "Traceback" not in refused.stderr

    from gateway.api import create_app
    from tests.gatewaykit import make_services

    services = make_services(tmp_path)  # over the same tmp_path/gateway.db
    with TestClient(create_app(services)) as client:
        answer = client.post(
            "/api/auth/login",
            json={"username": "admin", "password": "correct horse battery staple"},
        )
    assert answer.status_code == 200 and answer.json()["role"] == "admin"


def test_student_account_prints_a_code_once_that_signs_the_student_in(tmp_path: Path) -> None:
    """`dormguard student-account ID` prints a one-time code; an unknown id exits 2."""
    import os
    import re

    from fastapi.testclient import TestClient

    from gateway.api import create_app
    from tests.gatewaykit import add_person, make_services

    config = minimal_gateway_yaml(tmp_path)
    services = make_services(tmp_path)  # over the same tmp_path/gateway.db
    add_person(services, "s2024007")
    base = [sys.executable, "-m", "dormguard.cli", "student-account", "--config", str(config)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    unknown = subprocess.run(
        [*base, "nobody"], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert unknown.returncode == 2 and "no person 'nobody'" in unknown.stderr
    made = subprocess.run(
        [*base, "s2024007"], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert made.returncode == 0, made.stderr
    code = re.search(r"sign-in code \(shown once\): (\S+)", made.stdout)
    assert code is not None, made.stdout
    with TestClient(create_app(services)) as client:
        answer = client.post(
            "/api/auth/login", json={"username": "s2024007", "password": code.group(1)}
        )
    assert answer.status_code == 200 and answer.json()["role"] == "student"


def test_a_production_gateway_without_a_signing_key_is_refused_at_validation(
    tmp_path: Path,
) -> None:
    """Gates obey only signed commands: a production gateway without the key is a config error
    that names the fix, not a gateway whose commands silently fail."""
    config = tmp_path / "gateway.yaml"
    config.write_text("site: campus\nmode: production\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dormguard.cli",
            "validate-config",
            "--kind",
            "gateway",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert done.returncode == 2
    assert "command_signing is required in production" in done.stdout + done.stderr
    assert "dormguard keys generate" in done.stdout + done.stderr


def test_keys_generate_writes_a_private_key_and_prints_the_gates_trusted_key(
    tmp_path: Path,
) -> None:
    from contracts.signing import MessageSigner, parse_private_key

    out = tmp_path / "signing.key"
    base = [sys.executable, "-m", "dormguard.cli", "keys"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    made = subprocess.run(
        [*base, "generate", "--out", str(out)], capture_output=True, text=True, env=env, check=False
    )
    assert made.returncode == 0, made.stderr
    assert out.stat().st_mode & 0o077 == 0, "the signing key is readable by others"
    public = MessageSigner(parse_private_key(out.read_text())).public_key
    assert f"trusted_keys: [{public}]" in made.stdout
    assert out.read_text().strip() not in made.stdout, "the private key was printed"
    again = subprocess.run(
        [*base, "generate", "--out", str(out)], capture_output=True, text=True, env=env, check=False
    )
    assert again.returncode == 2 and "exists" in again.stderr
    shown = subprocess.run(
        [*base, "public", "--key", str(out)], capture_output=True, text=True, env=env, check=False
    )
    assert shown.stdout.strip() == public
