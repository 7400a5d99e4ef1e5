"""Which alerts a caller may see and act on, and the SQL filter that keeps to it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, select, true

from gateway.alerts.types import AlertType
from gateway.db.schema import AlertRow, Person


@dataclass(frozen=True, slots=True)
class AlertScope:
    """Which alerts a caller may see and act on.

    ``types`` None means every type; ``counsellor`` limits welfare alerts to the people whose
    counsellor that username is.
    """

    types: frozenset[AlertType] | None = None
    counsellor: str | None = None

    def admits_type(self, alert_type: AlertType) -> bool:
        """Whether alerts of this type are in scope at all."""
        return self.types is None or alert_type in self.types


EVERYTHING = AlertScope()


def scope_filter(scope: AlertScope) -> ColumnElement[bool]:
    """The WHERE clause on AlertRow that keeps to the scope."""
    clauses: list[ColumnElement[bool]] = []
    if scope.types is not None:
        clauses.append(AlertRow.type.in_(sorted(t.value for t in scope.types)))
    if scope.counsellor is not None:
        mine = select(Person.person_id).where(Person.counsellor == scope.counsellor)
        clauses.append(
            and_(
                AlertRow.type == AlertType.WELFARE.value,
                AlertRow.detail["person_id"].as_string().in_(mine),
            )
        )
    return and_(true(), *clauses)
