"""Why an enrolment request cannot go ahead (the API turns each into its HTTP status)."""

from __future__ import annotations


class EnrolmentError(Exception):
    """Enrolment cannot go ahead; the message says why."""


class PersonNotFoundError(EnrolmentError, LookupError):
    """No such person in the people table."""


class ConsentRequiredError(EnrolmentError):
    """The person has not granted (or has withdrawn) consent to face recognition."""


class FaceOptedOutError(EnrolmentError):
    """The person chose card/PIN instead of face recognition."""
