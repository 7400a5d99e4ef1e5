"""Rules of PIN hashing, card UID normalisation, keypad parsing and the keyboard-wedge reader."""

from __future__ import annotations

import base64
import io
import logging
import queue
import threading

import pytest

from contracts.access import Person
from contracts.credentials import (
    MAX_ITERATIONS,
    hash_pin,
    normalize_card_uid,
    parse_pin_entry,
    verify_pin,
)
from edge.gate.credentials import KeyboardWedgeReader, find_by_card

FAST = 1_000  # iterations for tests; the production default is exercised once
PIN = "482916"
STORED = hash_pin(PIN, iterations=FAST)
_, _, STORED_SALT, STORED_HASH = STORED.split("$")

# --- PIN hashing --------------------------------------------------------------------------------


def test_hash_has_algorithm_iterations_salt_and_sha256_digest() -> None:
    algorithm, iterations, salt, digest = hash_pin(PIN, iterations=FAST).split("$")
    assert algorithm == "pbkdf2_sha256"
    assert iterations == str(FAST)
    assert len(base64.b64decode(salt, validate=True)) == 16
    assert len(base64.b64decode(digest, validate=True)) == 32


def test_default_hash_uses_200000_iterations_and_verifies() -> None:
    encoded = hash_pin(PIN)
    assert encoded.split("$")[1] == "200000"
    assert verify_pin(PIN, encoded)


def test_same_pin_hashes_differently_each_time_thanks_to_salt() -> None:
    first, second = hash_pin(PIN, iterations=FAST), hash_pin(PIN, iterations=FAST)
    assert first != second
    assert verify_pin(PIN, first)
    assert verify_pin(PIN, second)


@pytest.mark.parametrize("pin", ["0000", "1234", "00001234", "99999999"])
def test_right_pin_verifies(pin: str) -> None:
    assert verify_pin(pin, hash_pin(pin, iterations=FAST))


@pytest.mark.parametrize(
    "attempt", ["482917", "48291", "4829160", "0482916", "", " 482916", "482916\n", "abcdef"]
)
def test_wrong_pin_does_not_verify(attempt: str) -> None:
    assert not verify_pin(attempt, STORED)


def test_pin_that_cannot_be_encoded_does_not_verify() -> None:
    assert not verify_pin("48\ud80029", STORED)


@pytest.mark.parametrize(
    "encoded",
    [
        None,
        "",
        "garbage",
        "$$$",
        STORED + "$extra",
        STORED.replace("pbkdf2_sha256", "pbkdf2_sha1"),
        STORED.replace("pbkdf2_sha256", "PBKDF2_SHA256"),
        f"pbkdf2_sha256$abc${STORED_SALT}${STORED_HASH}",
        f"pbkdf2_sha256$${STORED_SALT}${STORED_HASH}",
        f"pbkdf2_sha256$0${STORED_SALT}${STORED_HASH}",
        f"pbkdf2_sha256$-5${STORED_SALT}${STORED_HASH}",
        f"pbkdf2_sha256$ 1000${STORED_SALT}${STORED_HASH}",
        f"pbkdf2_sha256$1_000${STORED_SALT}${STORED_HASH}",
        f"pbkdf2_sha256$١٠٠٠${STORED_SALT}${STORED_HASH}",  # Arabic-Indic digits
        f"pbkdf2_sha256${MAX_ITERATIONS + 1}${STORED_SALT}${STORED_HASH}",
        f"pbkdf2_sha256${FAST}$${STORED_HASH}",
        f"pbkdf2_sha256${FAST}$!!not base64!!${STORED_HASH}",
        f"pbkdf2_sha256${FAST}$sält${STORED_HASH}",
        f"pbkdf2_sha256${FAST}${STORED_SALT}$",
        f"pbkdf2_sha256${FAST}${STORED_SALT}${STORED_HASH[:-4]}",
        f"pbkdf2_sha256${FAST}${STORED_SALT}${base64.b64encode(b'x' * 33).decode()}",
    ],
)
def test_missing_or_malformed_stored_hash_never_verifies_and_never_raises(
    encoded: str | None,
) -> None:
    assert not verify_pin(PIN, encoded)


def test_tampered_iteration_count_does_not_verify() -> None:
    tampered = STORED.replace(f"${FAST}$", f"${FAST + 1}$")
    assert not verify_pin(PIN, tampered)


@pytest.mark.parametrize("pin", ["", "123", "123456789", "12a4", "12 34", "１２３４", "-1234"])
def test_hash_refuses_pin_that_keypad_cannot_produce(pin: str) -> None:
    with pytest.raises(ValueError, match="PIN must") as error:
        hash_pin(pin, iterations=FAST)
    assert not pin or pin not in str(error.value)


@pytest.mark.parametrize("iterations", [0, -1, MAX_ITERATIONS + 1])
def test_hash_refuses_iterations_out_of_range(iterations: int) -> None:
    with pytest.raises(ValueError, match="iterations must be between"):
        hash_pin(PIN, iterations=iterations)


# --- card UIDs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("04A32B1C", "04A32B1C"),
        ("04a32b1c", "04A32B1C"),
        ("04:a3:2b:1c", "04A32B1C"),
        ("04-A3-2B-1C", "04A32B1C"),
        ("04 A3 2B 1C", "04A32B1C"),
        ("  04:A3-2b 1c\r\n", "04A32B1C"),
        ("04:5f:8a:b2:6c:91:80", "045F8AB26C9180"),  # 7-byte UID
        ("0123456789abcdef0123", "0123456789ABCDEF0123"),  # 10-byte UID, the longest
        ("0012345678", "0012345678"),  # keyboard-wedge decimal, leading zeros kept
        ("12345678", "12345678"),
        ("3735928559", "3735928559"),
        ("DEADBEEF", "DEADBEEF"),
    ],
)
def test_card_uid_is_normalised_to_uppercase_hex_or_decimal(raw: str, expected: str) -> None:
    assert normalize_card_uid(raw) == expected


@pytest.mark.parametrize("raw", ["04:a3:2b:1c", "3735928559", "de ad be ef"])
def test_card_uid_normalisation_is_idempotent(raw: str) -> None:
    once = normalize_card_uid(raw)
    assert normalize_card_uid(once) == once


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        (":-: -", "empty"),
        ("04G32B1C", "not hex digits: 'G'"),
        ("0x04A3", "not hex digits: 'x'"),
        ("04.A3.2B.1C", "not hex digits: '.'"),
        ("04\tA3", "not hex digits: '\\\\t'"),
        ("０４Ａ３", "not hex digits"),  # full-width characters from an IME
        ("0123456789abcdef01234", "too long: 21 hex digits, at most 20"),
        ("F" * 64, "too long: 64 hex digits"),
        ("1" * 21, "too long: 21 hex digits"),  # digits beyond decimal length are read as hex
    ],
)
def test_invalid_card_uid_is_rejected_with_what_was_wrong(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        normalize_card_uid(raw)


ALICE = Person(person_id="S001", card_uids=frozenset({"04:A3:2B:1C", "3735928559"}))
BOB = Person(person_id="S002", card_uids=frozenset({"045F8AB26C9180"}))
CAROL = Person(person_id="S003")
PEOPLE = {p.person_id: p for p in (ALICE, BOB, CAROL)}


@pytest.mark.parametrize(
    ("uid", "expected"),
    [
        ("04A32B1C", ALICE),
        ("04-a3-2b-1c", ALICE),
        ("3735928559", ALICE),
        ("04:5F:8A:B2:6C:91:80", BOB),
        ("04A32B1D", None),
        ("12345678", None),
    ],
)
def test_card_is_found_whatever_separators_and_case(uid: str, expected: Person | None) -> None:
    assert find_by_card(PEOPLE, uid) == expected


def test_card_enrolled_for_two_people_opens_for_neither(caplog: pytest.LogCaptureFixture) -> None:
    twin = Person(person_id="S009", card_uids=frozenset({"04a32b1c"}))
    with caplog.at_level(logging.WARNING):
        assert find_by_card({**PEOPLE, "S009": twin}, "04A32B1C") is None
    assert "S001" in caplog.text
    assert "S009" in caplog.text


def test_malformed_stored_card_is_skipped_not_fatal() -> None:
    broken = Person(person_id="S010", card_uids=frozenset({"not a card", "AABBCCDD"}))
    assert find_by_card({"S010": broken}, "aa:bb:cc:dd") == broken


def test_find_by_card_rejects_malformed_query() -> None:
    with pytest.raises(ValueError, match="not hex digits"):
        find_by_card(PEOPLE, "04:ZZ")


# --- keypad PIN entry ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("S001#4829", ("S001", "4829")),
        ("S001#48291673", ("S001", "48291673")),
        ("20230417#0000", ("20230417", "0000")),
        ("  S001#482916\n", ("S001", "482916")),
    ],
)
def test_keypad_entry_splits_into_person_and_pin(text: str, expected: tuple[str, str]) -> None:
    assert parse_pin_entry(text) == expected


@pytest.mark.parametrize(
    ("text", "secret", "message"),
    [
        ("S001975310", "975310", "exactly one '#'"),
        ("S001#9753#10", "9753", "exactly one '#'"),
        ("#975310", "975310", "no person id"),
        ("  #975310", "975310", "no person id"),
        ("S001#975", "975", "4 to 8 digits"),
        ("S001#975310864", "975310864", "4 to 8 digits"),
        ("S001#", "", "4 to 8 digits"),
        ("S001#97a531", "97a531", "only the digits"),
        ("S001#９７５３１", "９７５３１", "only the digits"),
    ],
)
def test_bad_keypad_entry_is_rejected_without_revealing_the_pin(
    text: str, secret: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as error:
        parse_pin_entry(text)
    assert not secret or secret not in str(error.value)


# --- keyboard-wedge reader ----------------------------------------------------------------------


def run_to_end(reader: KeyboardWedgeReader) -> None:
    reader.start()
    assert reader.join(timeout=5.0), "reader did not finish at end of input"


def test_reader_delivers_valid_cards_in_order_and_counts_invalid_lines() -> None:
    stream = io.StringIO("04:a3:2b:1c\nnot-a-card\n\n3735928559\nZZZZ\r\n04a32b1d")
    cards: list[str] = []
    reader = KeyboardWedgeReader(stream, cards.append)
    run_to_end(reader)
    assert cards == ["04A32B1C", "3735928559", "04A32B1D"]
    assert reader.accepted == 3
    assert reader.rejected == 3


def test_reader_logs_why_a_line_was_rejected(caplog: pytest.LogCaptureFixture) -> None:
    reader = KeyboardWedgeReader(io.StringIO("04G3\n"), lambda uid: None)
    with caplog.at_level(logging.WARNING, logger="edge.gate.credentials"):
        run_to_end(reader)
    assert "not hex digits: 'G'" in caplog.text


def test_reader_constructor_reads_nothing() -> None:
    stream = io.StringIO("04A32B1C\n")
    cards: list[str] = []
    KeyboardWedgeReader(stream, cards.append)
    assert stream.tell() == 0
    assert cards == []


def test_failing_card_handler_does_not_stop_the_reader() -> None:
    seen: list[str] = []

    def handler(uid: str) -> None:
        seen.append(uid)
        if uid == "AAAAAAAA":
            raise RuntimeError("door controller unreachable")

    reader = KeyboardWedgeReader(io.StringIO("AAAAAAAA\nBBBBBBBB\n"), handler)
    run_to_end(reader)
    assert seen == ["AAAAAAAA", "BBBBBBBB"]
    assert reader.callback_errors == 1


def test_reader_cannot_be_started_twice() -> None:
    reader = KeyboardWedgeReader(io.StringIO(""), lambda uid: None)
    reader.start()
    with pytest.raises(RuntimeError, match="already started"):
        reader.start()
    assert reader.join(timeout=5.0)


class QueueStream:
    """A text stream whose readline blocks until the test supplies a line ("" = end)."""

    def __init__(self) -> None:
        self.lines: queue.Queue[str] = queue.Queue()

    def readline(self) -> str:
        return self.lines.get(timeout=5.0)


def test_no_card_is_delivered_after_stop() -> None:
    stream = QueueStream()
    delivered = threading.Event()
    cards: list[str] = []

    def handler(uid: str) -> None:
        cards.append(uid)
        delivered.set()

    reader = KeyboardWedgeReader(stream, handler)
    reader.start()
    stream.lines.put("AAAAAAAA\n")
    assert delivered.wait(timeout=5.0)
    reader.stop()
    stream.lines.put("BBBBBBBB\n")
    assert reader.join(timeout=5.0)
    assert cards == ["AAAAAAAA"]


class BrokenStream:
    def readline(self) -> str:
        raise OSError("device unplugged")


def test_reader_ends_and_logs_when_the_stream_fails(caplog: pytest.LogCaptureFixture) -> None:
    reader = KeyboardWedgeReader(BrokenStream(), lambda uid: None)
    with caplog.at_level(logging.ERROR, logger="edge.gate.credentials"):
        run_to_end(reader)
    assert "card reader stream failed" in caplog.text


def test_undecodable_input_is_rejected_and_reading_goes_on() -> None:
    raw = io.BytesIO(b"AAAAAAAA\n\xff\xfe\nBBBBBBBB\n")
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors="replace")
    cards: list[str] = []
    reader = KeyboardWedgeReader(stream, cards.append)
    run_to_end(reader)
    assert cards == ["AAAAAAAA", "BBBBBBBB"]
    assert reader.rejected == 1
