"""Loading the gate YAML config: valid files load, every problem points at its line and field."""

from __future__ import annotations

import re
from dataclasses import fields
from datetime import time
from pathlib import Path
from textwrap import dedent

import pytest
from pydantic import ValidationError

from contracts.settings import MqttSettings, Secret
from contracts.yamlconfig import ConfigError, load_yaml_model
from edge.gate.config import (
    ConfirmationSection,
    CredentialsSection,
    DetectionSection,
    DoorSection,
    EncodingSection,
    GateConfig,
    MatchingSection,
    SnapshotSection,
    SourceSection,
)
from edge.gate.frames import SourceSpec
from edge.gate.model import AccessPolicy, Curfew
from edge.gate.replay import FreshnessRule
from edge.gate.voting import ConfirmRule

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gate.example.yaml"
MARK = "# <-"

TRUSTED_KEY = "ed25519:k9JGH25GcNg6Yg9cb6mZTo7+m0OYN/fqZ1fFfEYUSAY="  # a public key, no secret

# The required sections of a minimal config, in file order; tests replace or add sections.
_REQUIRED = {
    "site": "site: campus\n",
    "building": "building: B1\n",
    "gate": "gate:\n  id: B1-main\n",
    "source": 'source:\n  kind: camera\n  target: "0"\n',
    "gallery": (
        "gallery:\n  path: /var/lib/dormguard/gallery.bin\n  key:\n    env: DORMGUARD_GALLERY_KEY\n"
    ),
    "outbox": "outbox:\n  path: /var/lib/dormguard/outbox.sqlite\n",
    "command_auth": f"command_auth:\n  trusted_keys: ['{TRUSTED_KEY}']\n",
}
REQUIRED_FIELDS = ["site", "building", "gate", "source", "gallery", "outbox", "command_auth"]


def gate_yaml(**sections: str) -> str:
    """A minimal valid config with some sections replaced or added (dedented YAML snippets)."""
    merged = _REQUIRED | {name: dedent(text) for name, text in sections.items()}
    return "".join(merged.values())


def marked_lines(text: str) -> list[int]:
    """The 1-based numbers of the lines carrying the '# <-' marker."""
    return [n for n, line in enumerate(text.splitlines(), start=1) if MARK in line]


def marked_line(text: str) -> int:
    """The 1-based number of the one line carrying the '# <-' marker."""
    [line] = marked_lines(text)
    return line


def load(tmp_path: Path, text: str | bytes) -> GateConfig:
    path = tmp_path / "gate.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return load_yaml_model(path, GateConfig)


def problems_of(tmp_path: Path, text: str | bytes) -> list[str]:
    with pytest.raises(ConfigError) as excinfo:
        load(tmp_path, text)
    return excinfo.value.problems


def assert_single_problem(tmp_path: Path, text: str, field: str, fragment: str) -> None:
    """Loading fails with exactly one problem, on the marked line, naming field and cause."""
    problems = problems_of(tmp_path, text)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"line {marked_line(text)}: {field}: "), problems[0]
    assert fragment in problems[0]


# ---------------------------------------------------------------- valid files


def test_minimal_config_loads_with_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, gate_yaml())
    assert config.producer_id == "gate:campus/B1/B1-main"
    assert config.gate.direction == "in"
    assert config.source.target == "0"
    assert config.gallery.key == Secret(env="DORMGUARD_GALLERY_KEY")
    assert config.door == DoorSection()
    assert config.mqtt == MqttSettings()
    assert config.policy.timezone == "Asia/Shanghai"
    assert config.policy.curfew is None


def test_example_config_validates() -> None:
    config = load_yaml_model(EXAMPLE, GateConfig)
    assert config.producer_id == "gate:campus/B1/B1-main"


@pytest.mark.parametrize("workers", ["auto", "1", "2", "8"])
def test_encoding_workers_auto_or_one_to_eight_load(tmp_path: Path, workers: str) -> None:
    config = load(tmp_path, gate_yaml(encoding=f"encoding:\n  workers: {workers}\n"))
    assert str(config.encoding.workers) == workers


@pytest.mark.parametrize("workers", ["0", "9", "two", "1.5"])
def test_encoding_workers_out_of_range_are_refused_at_their_line(
    tmp_path: Path, workers: str
) -> None:
    text = gate_yaml(encoding=f"encoding:\n  workers: {workers}  {MARK}\n")
    problems = problems_of(tmp_path, text)
    assert problems and all(
        p.startswith(f"line {marked_line(text)}: encoding.workers") for p in problems
    ), problems


def test_encoding_defaults_to_in_process() -> None:
    """Without the section the gate encodes in its own process, as before the pool."""
    assert EncodingSection().workers == 1


def test_example_config_mentions_every_top_level_setting() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    missing = [name for name in GateConfig.model_fields if f"\n{name}:" not in text]
    assert missing == []


@pytest.mark.parametrize(
    ("section", "default"),
    [
        ("detection", DetectionSection()),
        ("matching", MatchingSection()),
        ("confirmation", ConfirmationSection()),
        ("door", DoorSection()),
        ("credentials", CredentialsSection()),
        ("snapshots", SnapshotSection()),
    ],
)
def test_example_config_shows_the_real_defaults(section: str, default: object) -> None:
    """The example claims optional values shown are the defaults; keep it honest."""
    config = load_yaml_model(EXAMPLE, GateConfig)
    assert getattr(config, section) == default


@pytest.mark.parametrize(
    ("door", "door_kind", "contact_kind"),
    [
        (
            "door:\n  kind: mqtt_relay\n  relay_topic: cmnd/gate1-relay/POWER\n",
            "mqtt_relay",
            "none",
        ),
        ("door:\n  kind: gpio\n  pin: 0\n", "gpio", "none"),
        ("door:\n  contact:\n    kind: gpio\n    pin: 0\n", "simulated", "gpio"),
        ("door:\n  contact:\n    kind: mqtt\n    topic: z2m/gate1-contact\n", "simulated", "mqtt"),
    ],
    ids=["mqtt-relay", "gpio-pin-0", "contact-gpio-pin-0", "contact-mqtt"],
)
def test_door_and_contact_kind_with_their_target_load(
    tmp_path: Path, door: str, door_kind: str, contact_kind: str
) -> None:
    config = load(tmp_path, gate_yaml(door=door))
    assert (config.door.kind, config.door.contact.kind) == (door_kind, contact_kind)


@pytest.mark.parametrize(
    ("start", "end"), [("00:00", "23:59"), ("23:00", "06:00"), ("19:30", "19:30")]
)
def test_quoted_hh_mm_curfew_loads(tmp_path: Path, start: str, end: str) -> None:
    config = load(
        tmp_path, gate_yaml(policy=f"policy:\n  curfew:\n    start: '{start}'\n    end: '{end}'\n")
    )
    assert config.policy.curfew is not None
    assert (config.policy.curfew.start, config.policy.curfew.end) == (start, end)


@pytest.mark.parametrize(
    "zone", ["UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Asia/Shanghai"]
)
def test_iana_timezone_loads(tmp_path: Path, zone: str) -> None:
    assert (
        load(tmp_path, gate_yaml(policy=f"policy:\n  timezone: {zone}\n")).policy.timezone == zone
    )


@pytest.mark.parametrize(("strong", "tolerance"), [(0.4, 0.4), (0.3, 0.5), (0.05, 0.6)])
def test_strong_distance_up_to_tolerance_loads(
    tmp_path: Path, strong: float, tolerance: float
) -> None:
    text = gate_yaml(
        matching=f"matching:\n  tolerance: {tolerance}\n",
        confirmation=f"confirmation:\n  strong_distance: {strong}\n",
    )
    assert load(tmp_path, text).confirmation.strong_distance == strong


# ---------------------------------------------------------------- errors point at the line

LINE_CASES = [
    pytest.param(
        {"colour": "colour: blue  # <-\n"},
        "colour",
        "Extra inputs are not permitted",
        id="unknown-top-level-key",
    ),
    pytest.param(
        {"gate": "gate:\n  id: B1-main\n  dirction: out  # <-\n"},
        "gate.dirction",
        "Extra inputs are not permitted",
        id="unknown-nested-key",
    ),
    pytest.param(
        {"door": "door:\n  contact:\n    kind: none\n    topc: x  # <-\n"},
        "door.contact.topc",
        "Extra inputs are not permitted",
        id="unknown-key-two-levels-down",
    ),
    pytest.param(
        {"gate": "gate: {id: B1-main, colour: red}  # <-\n"},
        "gate.colour",
        "Extra inputs are not permitted",
        id="unknown-key-in-flow-mapping",
    ),
    pytest.param(
        {"mqtt": "mqtt:\n  host: broker\n  port: not-a-port  # <-\n"},
        "mqtt.port",
        "valid integer",
        id="wrong-type-int",
    ),
    pytest.param(
        {"heartbeat_s": "heartbeat_s: fast  # <-\n"},
        "heartbeat_s",
        "valid number",
        id="wrong-type-float",
    ),
    pytest.param(
        {"credentials": "credentials:\n  keyboard_wedge: sometimes  # <-\n"},
        "credentials.keyboard_wedge",
        "valid boolean",
        id="wrong-type-bool",
    ),
    pytest.param(
        {"gate": "gate: B1-main  # <-\n"}, "gate", "valid dictionary", id="scalar-for-section"
    ),
    pytest.param({"gate": "gate:  # <-\n"}, "gate", "valid dictionary", id="empty-section"),
    pytest.param({"site": "site: [campus]  # <-\n"}, "site", "valid string", id="list-for-string"),
    pytest.param(
        {"mqtt": "mqtt:\n  port: 70000  # <-\n"},
        "mqtt.port",
        "less than or equal to 65535",
        id="out-of-range",
    ),
    pytest.param(
        {"matching": "matching:\n  tolerance: 1.5  # <-\n"},
        "matching.tolerance",
        "less than 1",
        id="tolerance-out-of-range",
    ),
    pytest.param(
        {"source": "source:\n  kind: webcam  # <-\n  target: '0'\n"},
        "source.kind",
        "'camera', 'stream', 'file' or 'folder'",
        id="bad-enum-source-kind",
    ),
    pytest.param(
        {"gate": "gate:\n  id: B1-main\n  direction: sideways  # <-\n"},
        "gate.direction",
        "'in' or 'out'",
        id="bad-enum-direction",
    ),
    pytest.param(
        {"door": "door:\n  kind: magnet  # <-\n"},
        "door.kind",
        "'simulated', 'gpio' or 'mqtt_relay'",
        id="bad-enum-door-kind",
    ),
    pytest.param(
        {"door": "door:\n  contact:\n    kind: reed  # <-\n"},
        "door.contact.kind",
        "'none', 'mqtt' or 'gpio'",
        id="bad-enum-contact-kind",
    ),
    pytest.param(
        {"door": "door:  # <-\n  kind: mqtt_relay\n"},
        "door",
        "door kind 'mqtt_relay' needs 'relay_topic'",
        id="mqtt-relay-without-relay-topic",
    ),
    pytest.param(
        {"door": "door:  # <-\n  kind: mqtt_relay\n  relay_topic: ''\n"},
        "door",
        "door kind 'mqtt_relay' needs 'relay_topic'",
        id="mqtt-relay-with-empty-relay-topic",
    ),
    pytest.param(
        {"door": "door:  # <-\n  kind: gpio\n"},
        "door",
        "door kind 'gpio' needs 'pin'",
        id="gpio-without-pin",
    ),
    pytest.param(
        {"door": "door:  # <-\n  kind: mqtt_relay\n  relay_topic: cmnd/+/POWER\n"},
        "door",
        "relay_topic must not contain MQTT wildcards",
        id="relay-topic-wildcard",
    ),
    pytest.param(
        {"door": "door:\n  contact:  # <-\n    kind: mqtt\n"},
        "door.contact",
        "contact kind 'mqtt' needs 'topic'",
        id="mqtt-contact-without-topic",
    ),
    pytest.param(
        {"door": "door:\n  contact:  # <-\n    kind: gpio\n"},
        "door.contact",
        "contact kind 'gpio' needs 'pin'",
        id="gpio-contact-without-pin",
    ),
    pytest.param(
        {"snapshots": "snapshots:  # <-\n  enabled: true\n"},
        "snapshots",
        "snapshots enabled but no 'directory' given",
        id="snapshots-without-directory",
    ),
    pytest.param(
        {"gate": "gate:\n  id: B1 main  # <-\n"},
        "gate.id",
        "gate id 'B1 main' is not a valid topic segment",
        id="gate-id-not-a-topic-segment",
    ),
    pytest.param(
        {"site": "site: dorm/1  # <-\n"},
        "site",
        "'dorm/1' is not a valid topic segment",
        id="site-with-slash",
    ),
    pytest.param(
        {"building": "building: '#'  # <-\n"},
        "building",
        "is not a valid topic segment",
        id="building-hash",
    ),
    pytest.param(
        {
            "gallery": """\
                gallery:
                  path: /var/lib/dormguard/gallery.bin
                  key:  # <-
                    env: DORMGUARD_GALLERY_KEY
                    file: /etc/dormguard/gallery.key
                """
        },
        "gallery.key",
        "give exactly one of 'file' or 'env'",
        id="secret-with-file-and-env",
    ),
    pytest.param(
        {"gallery": "gallery:\n  path: /g.bin\n  key: {}  # <-\n"},
        "gallery.key",
        "give exactly one of 'file' or 'env'",
        id="secret-with-neither",
    ),
    pytest.param(
        {"gallery": "gallery:\n  path: /g.bin\n  key:\n    env: K\n    value: s3cret  # <-\n"},
        "gallery.key.value",
        "Extra inputs are not permitted",
        id="secret-with-inline-value",
    ),
]


@pytest.mark.parametrize(("sections", "field", "fragment"), LINE_CASES)
def test_error_points_at_offending_line_and_field(
    tmp_path: Path, sections: dict[str, str], field: str, fragment: str
) -> None:
    assert_single_problem(tmp_path, gate_yaml(**sections), field, fragment)


@pytest.mark.parametrize(
    "value",
    ["'24:00'", "'23:60'", "'7:00'", "'2300'", "noon", "'23:00:00'", "' 23:00'", "'23.00'", "''"],
)
@pytest.mark.parametrize("which", ["start", "end"])
def test_curfew_time_not_in_hh_mm_form_is_rejected_at_its_line(
    tmp_path: Path, which: str, value: str
) -> None:
    times = {"start": "'23:00'", "end": "'06:00'"} | {which: f"{value}  {MARK}"}
    policy = f"policy:\n  curfew:\n    start: {times['start']}\n    end: {times['end']}\n"
    assert_single_problem(
        tmp_path, gate_yaml(policy=policy), f"policy.curfew.{which}", "HH:MM form"
    )


def test_unquoted_curfew_time_read_by_yaml_as_a_number_is_rejected_at_its_line(
    tmp_path: Path,
) -> None:
    """YAML 1.1 reads 23:00 as the base-60 integer 1380; it must not pass as a time."""
    policy = f"policy:\n  curfew:\n    start: 23:00  {MARK}\n    end: '06:00'\n"
    assert_single_problem(
        tmp_path, gate_yaml(policy=policy), "policy.curfew.start", "write times of day in quotes"
    )


@pytest.mark.parametrize(
    "zone",
    [
        "Mars/Olympus_Mons",
        "America",
        "''",
        "../../etc/passwd",
        "/etc/localtime",
        "'Asia/Shanghai '",
        "CST+8",
    ],
)
def test_unknown_timezone_is_rejected_at_its_line(tmp_path: Path, zone: str) -> None:
    text = gate_yaml(policy=f"policy:\n  timezone: {zone}  {MARK}\n")
    assert_single_problem(tmp_path, text, "policy.timezone", "unknown time zone")


def test_strong_distance_above_tolerance_is_rejected_naming_both_values(tmp_path: Path) -> None:
    text = gate_yaml(
        matching="matching:\n  tolerance: 0.4\n",
        confirmation="confirmation:\n  strong_distance: 0.45\n",
    )
    [problem] = problems_of(tmp_path, text)
    assert "confirmation: " in problem
    assert "strong_distance must not exceed matching.tolerance (0.45 > 0.4)" in problem


def test_strong_distance_above_tolerance_points_into_confirmation(tmp_path: Path) -> None:
    """The line of strong_distance is best; the line of the confirmation section will do."""
    text = gate_yaml(
        matching="matching:\n  tolerance: 0.4\n",
        confirmation=f"confirmation:  {MARK}\n  strong_distance: 0.45  {MARK}\n",
    )
    section_line, value_line = marked_lines(text)
    [problem] = problems_of(tmp_path, text)
    assert problem.startswith(
        (
            f"line {value_line}: confirmation.strong_distance: ",
            f"line {section_line}: confirmation: ",
        )
    ), problem


def test_every_problem_is_reported_with_its_own_line(tmp_path: Path) -> None:
    text = gate_yaml(
        gate=f"gate:\n  id: B1-main\n  dirction: out  {MARK}\n",
        mqtt=f"mqtt:\n  port: 0  {MARK}\n",
        heartbeat_s=f"heartbeat_s: -1  {MARK}\n",
    )
    problems = problems_of(tmp_path, text)
    fields = ["gate.dirction", "mqtt.port", "heartbeat_s"]
    expected = {f"line {n}: {f}" for n, f in zip(marked_lines(text), fields, strict=True)}
    assert {": ".join(p.split(": ")[:2]) for p in problems} == expected
    assert len(problems) == len(expected)


def test_missing_required_setting_is_named(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, gate_yaml(gate="gate:\n  direction: out\n"))
    assert [p.split(": ", 1)[1] for p in problems] == ["gate.id: Field required"]


def test_plaintext_password_is_rejected_without_echoing_it(tmp_path: Path) -> None:
    text = gate_yaml(mqtt=f"mqtt:\n  password: hunter2-s3cret  {MARK}\n")
    assert_single_problem(tmp_path, text, "mqtt.password", "valid dictionary")
    with pytest.raises(ConfigError) as excinfo:
        load(tmp_path, text)
    assert "hunter2" not in str(excinfo.value)


# ---------------------------------------------------------------- unreadable or odd files


@pytest.mark.parametrize(
    ("text", "where", "cause"),
    [
        (
            "site: campus\ngate:\n  id: [B1-main\nbuilding: B1\n",
            "line 4, column 9",
            "expected ',' or ']'",
        ),
        (
            "site: campus\n  building: B1\n",
            "line 2, column 11",
            "mapping values are not allowed here",
        ),
        ("site: campus\ngate:\n\tid: g\n", "line 3, column 1", "found character '\\t'"),
        ("site: campus\nbuilding: 'B1\n", "line 3, column 1", "found unexpected end of stream"),
        ("site: campus\nbuilding: *nope\n", "line 2, column 11", "found undefined alias 'nope'"),
        ("site: a\n---\nsite: b\n", "line 2, column 1", "but found another document"),
        (
            "site: !!python/object/apply:os.system [id]\n",
            "line 1, column 7",
            "could not determine a constructor",
        ),
    ],
    ids=[
        "unclosed-list",
        "bad-indent",
        "tab",
        "unclosed-quote",
        "undefined-alias",
        "two-documents",
        "python-tag",
    ],
)
def test_yaml_syntax_error_gives_line_and_column(
    tmp_path: Path, text: str, where: str, cause: str
) -> None:
    [problem] = problems_of(tmp_path, text)
    assert problem.startswith(f"{where}: YAML syntax error: ")
    assert cause in problem


@pytest.mark.parametrize(
    "text", ["", "\n\n", "# nothing configured yet\n", "---\n", "~\n", "null\n"]
)
def test_empty_file_reports_each_required_setting(tmp_path: Path, text: str) -> None:
    # "---" or "null" make an empty document node with a line; a blank file has no node.
    problems = [re.sub(r"^line \d+: ", "", p) for p in problems_of(tmp_path, text)]
    assert problems == [f"{name}: Field required" for name in REQUIRED_FIELDS]


@pytest.mark.parametrize(
    "text", ["- site\n- building\n", "[1, 2]\n", "just some text\n", "42\n", "'{}'\n"]
)
def test_top_level_that_is_not_a_mapping_is_rejected(tmp_path: Path, text: str) -> None:
    assert problems_of(tmp_path, text) == ["line 1: the top level must be a mapping of settings"]


def test_top_level_list_after_comments_points_at_the_list(tmp_path: Path) -> None:
    text = "# gate config\n# B1 main entrance\n- site: campus  # <-\n"
    assert problems_of(tmp_path, text) == [
        f"line {marked_line(text)}: the top level must be a mapping of settings"
    ]


def test_missing_file_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "gate.yaml"
    with pytest.raises(ConfigError) as excinfo:
        load_yaml_model(path, GateConfig)
    assert excinfo.value.path == path
    assert excinfo.value.problems == ["cannot read file: No such file or directory"]
    assert str(excinfo.value).startswith(f"{path}: invalid configuration:")


def test_directory_instead_of_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_yaml_model(tmp_path, GateConfig)
    assert excinfo.value.problems == ["cannot read file: Is a directory"]


def test_non_utf8_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="UTF-8"):
        load(tmp_path, gate_yaml().replace("campus", "caf\xe9").encode("latin-1"))


def test_config_error_message_names_file_and_lists_every_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load(tmp_path, gate_yaml(colour="colour: blue\n", heartbeat_s="heartbeat_s: 0\n"))
    header, *lines = str(excinfo.value).split("\n")
    assert header == f"{tmp_path / 'gate.yaml'}: invalid configuration:"
    assert sorted(lines) == [
        "  line 16: colour: Extra inputs are not permitted",
        "  line 17: heartbeat_s: Input should be greater than 0",
    ]


# ---------------------------------------------------------------- Secret


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"file": None, "env": None}, {"file": Path("/k"), "env": "K"}],
    ids=["nothing", "both-none", "both"],
)
def test_secret_needs_exactly_one_source(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="give exactly one of 'file' or 'env'"):
        Secret.model_validate(kwargs)


def test_secret_reads_environment_variable_from_given_mapping() -> None:
    assert Secret(env="GATE_KEY").read({"GATE_KEY": "s3cret"}) == "s3cret"


def test_secret_reads_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DORMGUARD_TEST_SECRET", "from-env")
    assert Secret(env="DORMGUARD_TEST_SECRET").read() == "from-env"


@pytest.mark.parametrize("content", ["s3cret", "s3cret\n", "  s3cret \r\n"])
def test_secret_file_is_read_without_surrounding_whitespace(tmp_path: Path, content: str) -> None:
    path = tmp_path / "key"
    path.write_text(content, encoding="utf-8")
    assert Secret(file=path).read() == "s3cret"


@pytest.mark.parametrize("environ", [{}, {"GATE_KEY": ""}, {"OTHER": "s3cret"}])
def test_unset_or_empty_secret_variable_is_an_error_naming_the_variable(
    environ: dict[str, str],
) -> None:
    with pytest.raises(ValueError, match=r"^environment variable GATE_KEY is not set$") as excinfo:
        Secret(env="GATE_KEY").read(environ)
    assert "s3cret" not in str(excinfo.value)


def test_missing_secret_file_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.key"
    with pytest.raises(ValueError, match=r"^cannot read secret file ") as excinfo:
        Secret(file=path).read()
    assert str(path) in str(excinfo.value)
    assert "No such file or directory" in str(excinfo.value)


def test_secret_file_that_is_a_directory_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^cannot read secret file ") as excinfo:
        Secret(file=tmp_path).read()
    assert str(tmp_path) in str(excinfo.value)


def test_non_utf8_secret_file_error_names_the_file_not_the_content(tmp_path: Path) -> None:
    path = tmp_path / "binary.key"
    path.write_bytes(b"s3cr\xe9t")
    with pytest.raises(ValueError) as excinfo:
        Secret(file=path).read()
    assert str(path) in str(excinfo.value)
    assert "s3cr" not in str(excinfo.value)
    assert "0xe9" not in str(excinfo.value)


@pytest.mark.parametrize("content", ["", "\n", "   \n"])
def test_empty_secret_file_is_an_error_naming_the_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.key"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=str(path)):
        Secret(file=path).read()


@pytest.mark.parametrize(
    ("keys", "fragment"),
    [
        ("[]", "at least 1 item"),
        ("['k9JGH25GcNg6Yg9cb6mZTo7+m0OYN/fqZ1fFfEYUSAY=']", "must start with 'ed25519:'"),
        ("['ed25519:not base64!']", "not valid base64"),
        ("['ed25519:AAAA']", "32 bytes, this one 3"),
    ],
)
def test_a_gate_without_a_usable_trusted_key_is_refused_at_start(
    tmp_path: Path, keys: str, fragment: str
) -> None:
    """No trusted gateway key means no command could ever be verified: a config error."""
    text = gate_yaml(command_auth=f"command_auth:  {MARK}\n  trusted_keys: {keys}\n")
    problems = problems_of(tmp_path, text)
    assert len(problems) == 1, problems
    assert "command_auth.trusted_keys" in problems[0]
    assert fragment in problems[0]


def test_nonce_store_defaults_next_to_the_outbox(tmp_path: Path) -> None:
    config = load(tmp_path, gate_yaml())
    assert config.nonce_store == Path("/var/lib/dormguard/outbox.sqlite.nonces")


@pytest.mark.parametrize("given", ["cert_file", "key_file"])
def test_mutual_tls_needs_both_certificate_and_key(tmp_path: Path, given: str) -> None:
    """paho silently ignores a lone key file: a half-configured client certificate is an error."""
    text = gate_yaml(
        mqtt=f"mqtt:\n  tls:  {MARK}\n    ca_file: /etc/dormguard/ca.crt\n    {given}: /x\n"
    )
    problems = problems_of(tmp_path, text)
    assert len(problems) == 1 and "both cert_file and key_file" in problems[0], problems


# --- the pure settings the sections stand for -------------------------------------------------


def test_source_section_has_exactly_the_fields_of_a_frame_source_spec() -> None:
    """build_gate turns the section into a SourceSpec field for field."""
    assert list(SourceSection.model_fields) == [f.name for f in fields(SourceSpec)]


def test_default_sections_give_the_default_rules(tmp_path: Path) -> None:
    config = load(tmp_path, gate_yaml())
    assert config.policy.access_policy() == AccessPolicy()
    assert config.confirmation.confirm_rule() == ConfirmRule()
    assert config.command_auth.freshness_rule() == FreshnessRule(max_age_s=60.0, max_future_s=30.0)


def test_policy_and_confirmation_sections_give_the_rules_they_configure(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        gate_yaml(
            policy="policy:\n  timezone: Europe/Berlin\n  anti_passback: true\n"
            "  anti_passback_window_s: 120\n  curfew:\n    start: '23:30'\n    end: '05:00'\n",
            confirmation="confirmation:\n  k: 3\n  window_s: 2.5\n  strong_distance: 0.35\n"
            "  strong_margin: 0.2\n  reject_after: 4\n  reverify_s: 2\n  cooldown_s: 5\n",
        ),
    )
    assert config.policy.access_policy() == AccessPolicy(
        timezone="Europe/Berlin",
        curfew=Curfew(time(23, 30), time(5, 0)),
        anti_passback=True,
        anti_passback_window_s=120.0,
    )
    assert config.confirmation.confirm_rule() == ConfirmRule(
        k=3, window_s=2.5, strong_distance=0.35, strong_margin=0.2, reject_after=4
    )
