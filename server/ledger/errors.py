"""What the ledger refuses, in its own words. No HTTP here: server/http/errors.py maps these to statuses."""

from __future__ import annotations


class LedgerError(Exception):
    """A request the ledger cannot carry out as asked (the caller's mistake, not a crash)."""


class NotFound(LedgerError):
    """No such task or lease token."""


class LeaseLost(LedgerError):
    """The lease expired and was handed on, or the task was finished by someone else: stop."""


class MigrationError(Exception):
    """The database cannot be brought to the schema this release needs; the message says why."""
