"""Errors the library raises, each carrying enough context to act on without a debugger."""

from __future__ import annotations


class NSEError(Exception):
    """Base class for the library's errors."""


class NotPublished(NSEError):
    """NSE has not published this file (404, or an HTML page where data was expected).

    Not retried: a file that is not there yet will not appear within a retry's backoff.
    `blocked` when the answer was an HTML page with a success status: NSE's way of saying "not
    here" on some hosts, but also what a block or bot-challenge page looks like, so a date that
    stays so is reported as blocked rather than as late.
    """

    def __init__(self, url: str, reason: str, *, blocked: bool = False) -> None:
        super().__init__(f"{url}: not published ({reason})")
        self.url = url
        self.reason = reason
        self.blocked = blocked


class InHistory(NSEError):
    """An archive file that only ever holds NSE's latest day (today's `bulk.csv`) has moved past
    the trade date: that date is history now, served by NSE's API.
    """

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: moved past the trade date ({reason})")
        self.url = url
        self.reason = reason


class FetchError(NSEError):
    """A request failed after every retry (network errors, 5xx, throttling)."""


class ParseError(NSEError):
    """A file does not have the shape we expect. Names the file, and the line or column."""

    def __init__(
        self,
        file_name: str,
        message: str,
        *,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        where = file_name
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {message}")
        self.message = message
        self.file_name = file_name
        self.line = line
        self.column = column


class QualityError(NSEError):
    """A silver partition failed a critical expectation; it is not loaded.

    Not retried: the same bytes fail the same way. Bronze and silver stay for inspection.
    """
