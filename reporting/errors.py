"""Why an export stops: one error type for the caller, one for personal data found on the way out."""

from __future__ import annotations


class ExportError(RuntimeError):
    """The export cannot be written (missing marts, bad period, unsafe output)."""


class PersonalDataError(ExportError):
    """An export file contained something that looks like personal data; nothing was kept."""
