"""Every JSON payload example in docs/ is accepted by the wire contract, and each documented
message model has one: a gate or bridge built from the docs must not have its messages refused.

A payload example is a fenced ``json`` block right after a marker naming its model::

    <!-- model: AccessEvent -->
    ```json
    {"schema": 1, ...}
    ```

A ``json`` block that is not a wire payload says so with ``<!-- not a payload -->``; a block
with neither marker fails, so no example escapes the check. The models are read from
``contracts.registry`` when the test runs (every topic map in it), so a new message model, a
field made required or a tighter bound is checked against the docs without editing this test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from contracts import registry
from contracts.models import WireModel
from contracts.registry import PayloadError, parse_payload

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"

MODEL_MARKER = re.compile(r"^<!--\s*model:\s*(\w+)\s*-->$")
NOT_A_PAYLOAD = re.compile(r"^<!--\s*not a payload\b.*-->$")
JSON_FENCE = re.compile(r"^```json\s*$")
FENCE_END = "```"


@dataclass(frozen=True)
class Example:
    """One ```json block: where it starts, the model its marker names (None: not a payload)."""

    where: str
    model: str | None
    text: str


def message_models() -> dict[str, type[WireModel]]:
    """Every payload model of a topic, by name, from each topic map in contracts.registry."""
    models: dict[str, type[WireModel]] = {}
    for table in vars(registry).values():
        if isinstance(table, dict) and table:
            values = list(table.values())
            if all(isinstance(v, type) and issubclass(v, WireModel) for v in values):
                models.update({v.__name__: v for v in values})
    return models


def scan(text: str, name: str) -> tuple[list[Example], list[str]]:
    """The json blocks of one Markdown text, and the problems of its markers."""
    lines = text.splitlines()
    examples: list[Example] = []
    problems: list[str] = []
    pending: tuple[int, str | None] | None = None  # a marker line waiting for its block
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if JSON_FENCE.match(line):
            start = i + 1
            body: list[str] = []
            i += 1
            while i < len(lines) and lines[i].strip() != FENCE_END:
                body.append(lines[i])
                i += 1
            if pending is None:
                problems.append(
                    f"{name}:{start}: json block without a marker: put <!-- model: Name --> "
                    "(or <!-- not a payload -->) on the line before it"
                )
            else:
                examples.append(Example(f"{name}:{start}", pending[1], "\n".join(body)))
            pending = None
        elif (marker := MODEL_MARKER.match(line)) is not None:
            if pending is not None:
                problems.append(f"{name}:{pending[0]}: marker not followed by a json block")
            pending = (i + 1, marker.group(1))
        elif NOT_A_PAYLOAD.match(line):
            pending = (i + 1, None)
        elif line and pending is not None:
            problems.append(f"{name}:{pending[0]}: marker not followed by a json block")
            pending = None
        i += 1
    if pending is not None:
        problems.append(f"{name}:{pending[0]}: marker not followed by a json block")
    return examples, problems


def refusals(examples: list[Example], models: dict[str, type[WireModel]]) -> list[str]:
    """Why the contract refuses each example it refuses (file:line first)."""
    problems = []
    for example in examples:
        if example.model is None:
            continue
        model = models.get(example.model)
        if model is None:
            problems.append(
                f"{example.where}: {example.model!r} is not a message model of the contract "
                f"(known: {', '.join(sorted(models))})"
            )
            continue
        try:
            parse_payload(model, example.text.encode(), where=example.where)
        except PayloadError as exc:
            problems.append(str(exc))
    return problems


def doc_files() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def all_examples() -> tuple[list[Example], list[str]]:
    examples: list[Example] = []
    problems: list[str] = []
    for path in doc_files():
        found, wrong = scan(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))
        examples += found
        problems += wrong
    return examples, problems


def test_every_json_block_in_the_docs_is_marked_with_its_model() -> None:
    _, problems = all_examples()
    assert not problems, "\n".join(problems)


def test_every_payload_example_in_the_docs_is_accepted_by_the_contract() -> None:
    examples, _ = all_examples()
    assert any(e.model is not None for e in examples), "no payload example found in docs/"
    problems = refusals(examples, message_models())
    assert not problems, "examples the contract refuses:\n" + "\n".join(problems)


def test_every_documented_message_model_has_an_example() -> None:
    """A message model the docs name (`Model`) has at least one example a builder can copy."""
    models = message_models()
    text = "\n".join(path.read_text(encoding="utf-8") for path in doc_files())
    documented = {name for name in models if f"`{name}`" in text}
    examples, _ = all_examples()
    shown = {e.model for e in examples}
    missing = sorted(documented - shown)
    assert not missing, (
        f"documented without an example: {', '.join(missing)}; add one to docs/mqtt.md "
        "after a <!-- model: Name --> line"
    )


# --- the checker itself -----------------------------------------------------------------------

REFUSED = """# Gate

<!-- model: AccessEvent -->
```json
{"schema": 1, "event_id": "0123456789abcdef0123456789abcdef", "ts": "2026-11-29T04:41:46Z",
 "producer": "gate:campus1/b1/g1", "site": "campus1", "building": "b1", "gate_id": "g1",
 "direction": "in", "decision": "granted", "method": "face", "reason": "granted", "seq": 0}
```
"""


def test_a_refused_example_is_reported_with_its_file_line_and_field() -> None:
    examples, problems = scan(REFUSED, "docs/x.md")
    assert problems == []
    (refused,) = refusals(examples, message_models())
    assert refused.startswith("docs/x.md:4: invalid AccessEvent")
    assert "seq" in refused


def test_the_same_example_with_seq_1_is_accepted() -> None:
    examples, _ = scan(REFUSED.replace('"seq": 0', '"seq": 1'), "docs/x.md")
    assert refusals(examples, message_models()) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('intro\n\n```json\n{"a": 1}\n```\n', "docs/x.md:3: json block without a marker"),
        ("<!-- model: AccessEvent -->\nprose\n", "docs/x.md:1: marker not followed"),
        ("<!-- model: AccessEvent -->\n", "docs/x.md:1: marker not followed"),
    ],
    ids=["unmarked-block", "marker-then-prose", "marker-at-end"],
)
def test_markers_and_blocks_must_go_together(text: str, expected: str) -> None:
    _, problems = scan(text, "docs/x.md")
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_a_block_marked_as_no_payload_is_not_parsed_and_an_unknown_model_is_reported() -> None:
    text = '<!-- not a payload: a door contact -->\n```json\n{"contact": false}\n```\n'
    text += "\n<!-- model: NoSuchMessage -->\n```json\n{}\n```\n"
    examples, problems = scan(text, "docs/x.md")
    assert problems == []
    (unknown,) = refusals(examples, message_models())
    assert unknown.startswith("docs/x.md:7: 'NoSuchMessage' is not a message model")


DOCS_EXAMPLE_KEY = "ed25519:LpfFS5YWDuel81sX25AkP0gFAvizQr3s65gbKKXQzfo="


@pytest.mark.parametrize(
    ("model", "topic"),
    [
        ("Command", "dorm/campus1/b1/gate/g1/command"),
        ("GalleryUpdate", "dorm/campus1/b1/gate/g1/gallery"),
    ],
)
def test_the_signed_examples_in_docs_mqtt_verify_under_the_documented_key(
    model: str, topic: str
) -> None:
    """Someone implementing the signature from docs/mqtt.md can check their code against it."""
    from contracts.signing import MessageVerifier

    text = (DOCS / "mqtt.md").read_text(encoding="utf-8")
    assert DOCS_EXAMPLE_KEY in text
    examples, _ = scan(text, "docs/mqtt.md")
    (example,) = [e for e in examples if e.model == model]
    verifier = MessageVerifier.from_texts([DOCS_EXAMPLE_KEY])
    verifier.verify(topic, example.text.encode())
