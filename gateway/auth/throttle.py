"""Login throttle arithmetic: pure functions over plain values (no database, no clock).

Failed logins slow further tries down instead of locking the account (a lock lets anyone who
knows a user name keep its owner out): per source address, per account from that address, and per
account from everywhere with a much shorter cap, so the owner trying from another address waits
seconds at most (docs/decisions/0007-login-throttling.md). The counts live in
``login_throttles`` (gateway.auth.throttle_store), shared by every gateway on the database.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.config import ApiSettings


class ThrottleScope(enum.StrEnum):
    ADDRESS = "address"  # every failed login from one source address
    ACCOUNT_ADDRESS = "account_address"  # failures for one user name from one source address
    ACCOUNT = "account"  # failures for one user name from anywhere


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """How failed logins slow the next try down (the reasoning: docs/decisions/0007)."""

    free_failures: int = 5
    first_delay_s: float = 1.0
    address_cap_s: float = 300.0  # per address and per (account, address)
    account_cap_s: float = 30.0  # per account from everywhere: short, the owner may be elsewhere
    forget_after_s: float = 3600.0  # a count with no new failure for this long starts again

    @classmethod
    def of(cls, api: ApiSettings) -> ThrottlePolicy:
        """The policy the gateway runs with (``api.login_max_failures`` free failures)."""
        return cls(free_failures=api.login_max_failures)

    def cap_s(self, scope: ThrottleScope) -> float:
        """The longest wait a count of this scope can impose."""
        return self.account_cap_s if scope is ThrottleScope.ACCOUNT else self.address_cap_s


@dataclass(frozen=True, slots=True)
class FailureCount:
    """One throttle key's failed logins: how many, and when the last one was."""

    failures: int
    last_failure_at: datetime


@dataclass(frozen=True, slots=True)
class ThrottleCounts:
    """The three counts that decide whether one address may try one account now."""

    address: FailureCount | None = None
    account_address: FailureCount | None = None
    account: FailureCount | None = None


def throttle_delay_s(failures: int, cap_s: float, policy: ThrottlePolicy) -> float:
    """The wait after ``failures`` failures: none for the free ones, then doubling to the cap."""
    extra = failures - policy.free_failures
    if extra <= 0:
        return 0.0
    return min(cap_s, policy.first_delay_s * 2.0 ** min(extra - 1, 60))


def current_count(
    count: FailureCount | None, now: datetime, policy: ThrottlePolicy
) -> FailureCount | None:
    """The count still in force; None when there is none or it is forgotten."""
    if count is None or count.failures <= 0:
        return None
    if now - count.last_failure_at >= timedelta(seconds=policy.forget_after_s):
        return None
    return count


def count_failure(
    count: FailureCount | None, now: datetime, policy: ThrottlePolicy
) -> FailureCount:
    """The count after one more failure at ``now`` (a forgotten count starts again at 1)."""
    live = current_count(count, now, policy)
    return FailureCount((live.failures if live is not None else 0) + 1, now)


def throttle_until(scope: ThrottleScope, count: FailureCount, policy: ThrottlePolicy) -> datetime:
    """When the wait this count imposes on its own ends (its last failure plus the delay)."""
    delay = throttle_delay_s(count.failures, policy.cap_s(scope), policy)
    return count.last_failure_at + timedelta(seconds=delay)


def login_wait_s(counts: ThrottleCounts, now: datetime, policy: ThrottlePolicy) -> float:
    """Seconds before this address may try this account again; 0 when it may try now.

    The address's and the (account, address) counts each make it wait from their own last
    failure. The account's count from everywhere only applies to an address that has failed for
    this account itself, and also from that address's own last failure: an attacker elsewhere
    cannot make the owner wait at a fresh address, nor use up the owner's turn by trying first,
    and after a typo the owner waits ``account_cap_s`` at most.
    """
    wait = 0.0
    address = current_count(counts.address, now, policy)
    if address is not None:
        until = throttle_until(ThrottleScope.ADDRESS, address, policy)
        wait = max(wait, (until - now).total_seconds())
    pair = current_count(counts.account_address, now, policy)
    if pair is not None:
        account = current_count(counts.account, now, policy)
        delay = max(
            throttle_delay_s(pair.failures, policy.address_cap_s, policy),
            throttle_delay_s(
                account.failures if account is not None else 0, policy.account_cap_s, policy
            ),
        )
        wait = max(wait, (pair.last_failure_at + timedelta(seconds=delay) - now).total_seconds())
    return wait


def retry_after_s(wait_s: float) -> int:
    """A wait as whole seconds for Retry-After (rounded up, at least 1)."""
    return max(1, math.ceil(wait_s))


def starts_waiting(
    scope: ThrottleScope,
    before: FailureCount | None,
    after: FailureCount,
    policy: ThrottlePolicy,
) -> bool:
    """Whether this failure is the one from which the key's count imposes a wait (audited)."""
    cap = policy.cap_s(scope)
    was = throttle_delay_s(before.failures, cap, policy) if before is not None else 0.0
    return was == 0.0 and throttle_delay_s(after.failures, cap, policy) > 0.0
