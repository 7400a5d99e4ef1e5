"""Login throttle arithmetic and client addresses, with plain values (no database, no clock)."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest

from gateway.auth.addresses import UNKNOWN_ADDRESS, address_key, client_address
from gateway.auth.throttle import (
    FailureCount,
    ThrottleCounts,
    ThrottlePolicy,
    ThrottleScope,
    count_failure,
    current_count,
    login_wait_s,
    retry_after_s,
    starts_waiting,
    throttle_delay_s,
    throttle_until,
)

NOW = datetime(2025, 3, 1, 22, 0, tzinfo=UTC)
POLICY = ThrottlePolicy(free_failures=5)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("failures", "delay"),
    [(0, 0), (1, 0), (5, 0), (6, 1), (7, 2), (8, 4), (12, 64), (14, 256), (15, 300), (500, 300)],
)
def test_the_free_failures_cost_nothing_then_each_further_one_doubles_the_wait_to_the_cap(
    failures: int, delay: float
) -> None:
    assert throttle_delay_s(failures, POLICY.address_cap_s, POLICY) == delay


def test_the_account_cap_is_much_lower_than_the_address_cap() -> None:
    assert throttle_delay_s(100, POLICY.cap_s(ThrottleScope.ACCOUNT), POLICY) == 30
    assert throttle_delay_s(100, POLICY.cap_s(ThrottleScope.ACCOUNT_ADDRESS), POLICY) == 300
    assert throttle_delay_s(100, POLICY.cap_s(ThrottleScope.ADDRESS), POLICY) == 300


def test_a_count_is_forgotten_after_an_hour_without_failures() -> None:
    count = FailureCount(12, ago(3599))
    assert current_count(count, NOW, POLICY) == count
    assert current_count(FailureCount(12, ago(3600)), NOW, POLICY) is None
    assert count_failure(FailureCount(12, ago(3600)), NOW, POLICY) == FailureCount(1, NOW)
    assert count_failure(count, NOW, POLICY) == FailureCount(13, NOW)
    assert count_failure(None, NOW, POLICY) == FailureCount(1, NOW)


def test_no_counts_means_no_wait() -> None:
    assert login_wait_s(ThrottleCounts(), NOW, POLICY) == 0


def test_an_address_waits_from_its_last_failure() -> None:
    counts = ThrottleCounts(address=FailureCount(8, ago(1)))  # 4 s after the 8th failure
    assert login_wait_s(counts, NOW, POLICY) == pytest.approx(3)
    assert login_wait_s(ThrottleCounts(address=FailureCount(8, ago(4))), NOW, POLICY) == 0


def test_the_account_count_does_not_hold_back_an_address_that_never_failed_for_it() -> None:
    """The denial of service that was the bug: failures elsewhere keep nobody out here."""
    counts = ThrottleCounts(account=FailureCount(1000, NOW))
    assert login_wait_s(counts, NOW, POLICY) == 0


def test_after_a_typo_under_attack_the_owner_waits_the_account_cap_at_most() -> None:
    counts = ThrottleCounts(
        address=FailureCount(1, NOW),
        account_address=FailureCount(1, NOW),
        account=FailureCount(1000, NOW),
    )
    assert login_wait_s(counts, NOW, POLICY) == 30


def test_the_account_wait_runs_from_this_addresses_own_failure_not_the_attackers() -> None:
    """An attacker failing every second cannot keep pushing the owner's turn back."""
    counts = ThrottleCounts(
        account_address=FailureCount(1, ago(30)),
        account=FailureCount(1000, NOW),  # the attacker failed again just now
    )
    assert login_wait_s(counts, NOW, POLICY) == 0


def test_the_longest_of_the_address_and_account_waits_applies() -> None:
    counts = ThrottleCounts(
        address=FailureCount(6, NOW),  # 1 s
        account_address=FailureCount(10, NOW),  # 16 s
        account=FailureCount(7, NOW),  # 2 s
    )
    assert login_wait_s(counts, NOW, POLICY) == 16


def test_forgotten_counts_impose_nothing() -> None:
    old = FailureCount(50, ago(7200))
    counts = ThrottleCounts(address=old, account_address=old, account=old)
    assert login_wait_s(counts, NOW, POLICY) == 0


@pytest.mark.parametrize(("wait", "header"), [(0.01, 1), (1.0, 1), (1.2, 2), (299.5, 300)])
def test_retry_after_rounds_up_to_whole_seconds(wait: float, header: int) -> None:
    assert retry_after_s(wait) == header


def test_throttle_until_is_the_last_failure_plus_the_delay() -> None:
    count = FailureCount(7, NOW)
    assert throttle_until(ThrottleScope.ADDRESS, count, POLICY) == NOW + timedelta(seconds=2)
    never = FailureCount(3, NOW)
    assert throttle_until(ThrottleScope.ACCOUNT, never, POLICY) == NOW


def test_waiting_starts_with_the_first_failure_past_the_free_ones_and_only_then() -> None:
    scope = ThrottleScope.ADDRESS
    assert not starts_waiting(scope, FailureCount(4, NOW), FailureCount(5, NOW), POLICY)
    assert starts_waiting(scope, FailureCount(5, NOW), FailureCount(6, NOW), POLICY)
    assert not starts_waiting(scope, FailureCount(6, NOW), FailureCount(7, NOW), POLICY)
    one_free = ThrottlePolicy(free_failures=0)
    assert starts_waiting(scope, None, FailureCount(1, NOW), one_free)


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
        ("testclient", "testclient"),
        (None, UNKNOWN_ADDRESS),
        ("", UNKNOWN_ADDRESS),
    ],
)
def test_sources_are_counted_by_ipv4_address_or_ipv6_slash_64(host: str | None, key: str) -> None:
    assert address_key(host) == key


PROXIES = [ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("127.0.0.1/32")]


def test_x_forwarded_for_is_ignored_without_trusted_proxies() -> None:
    assert client_address("10.0.0.1", ["198.51.100.9"], []) == "10.0.0.1"


def test_x_forwarded_for_is_ignored_from_a_peer_that_is_no_trusted_proxy() -> None:
    assert client_address("203.0.113.5", ["198.51.100.9"], PROXIES) == "203.0.113.5"


def test_behind_trusted_proxies_the_nearest_untrusted_hop_is_the_client() -> None:
    # The client forged the first entry; our proxies appended what they saw.
    header = ["1.2.3.4, 198.51.100.9", "10.0.0.2"]
    assert client_address("127.0.0.1", header, PROXIES) == "198.51.100.9"


def test_a_trusted_proxy_without_x_forwarded_for_is_the_client() -> None:
    assert client_address("10.0.0.1", [], PROXIES) == "10.0.0.1"


def test_garbage_in_x_forwarded_for_falls_back_to_the_last_trusted_hop() -> None:
    assert client_address("10.0.0.1", ["<script>"], PROXIES) == "10.0.0.1"


def test_forwarded_entries_with_ports_are_understood() -> None:
    assert client_address("10.0.0.1", ["198.51.100.9:4711"], PROXIES) == "198.51.100.9"
    assert client_address("10.0.0.1", ["[2001:db8::1]:443"], PROXIES) == "2001:db8::1"
