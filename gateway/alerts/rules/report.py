"""How a rule's finding becomes signals: incidents every time, conditions only when they change.

Every rule family reports through one :class:`Reporter`, which remembers the last state it
reported of each condition (type, originator). The first observation of an originator after a
start is always reported, so an alert left open by a previous run is cleared if its condition
ended.
"""

from __future__ import annotations

from collections.abc import Hashable
from datetime import datetime
from typing import Literal

from gateway.alerts.rules.config import RulesConfig
from gateway.alerts.types import AlertType, JsonDict, Severity, Signal

TITLE_MAX_CHARS = 200


class Reporter:
    """Makes the signals of all rule families and remembers the conditions last reported."""

    def __init__(self, config: RulesConfig) -> None:
        self.config = config
        self._conditions: dict[tuple[AlertType, str], Hashable] = {}  # last reported; None=off

    def incident(
        self,
        alert_type: AlertType,
        originator: str,
        site: str,
        building: str,
        title: str,
        detail: JsonDict,
        at: datetime,
    ) -> list[Signal]:
        """Raise a momentary incident (unless its type is switched off)."""
        if not self.config.is_enabled(alert_type):
            return []
        severity = self.config.severity_of(alert_type)
        return [
            Signal(
                "raise", alert_type, originator, site, building, severity, _short(title), detail, at
            )
        ]

    def condition(
        self,
        alert_type: AlertType,
        originator: str,
        key: Hashable,
        site: str,
        building: str,
        title: str,
        detail: JsonDict,
        at: datetime,
        *,
        severity: Severity | None = None,
    ) -> list[Signal]:
        """Report a condition (key None: absent) only when it differs from the last report."""
        if not self.config.is_enabled(alert_type):
            return []
        marker = (alert_type, originator)
        if marker in self._conditions and self._conditions[marker] == key:
            return []
        self._conditions[marker] = key
        action: Literal["raise", "clear"] = "clear" if key is None else "raise"
        level = self.config.severity_of(alert_type) if severity is None else severity
        return [
            Signal(action, alert_type, originator, site, building, level, _short(title), detail, at)
        ]

    def last_reported(self, alert_type: AlertType, originator: str) -> Hashable:
        """The key last reported for this condition (None: absent or never reported)."""
        return self._conditions.get((alert_type, originator))

    def remember(self, alert_type: AlertType, originator: str, key: Hashable) -> None:
        """Record a condition a rule reported with a signal of its own making."""
        self._conditions[(alert_type, originator)] = key


def _short(title: str) -> str:
    return title if len(title) <= TITLE_MAX_CHARS else title[: TITLE_MAX_CHARS - 1] + "…"
