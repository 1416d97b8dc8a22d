"""Silence is a failure: a trading day NSE has not published, or answers with a block page, long
after its time.

Each fetch that finds a date not published is recorded in the lake, one entry per fetch with
when and why, at `silence/<dataset>/trade_date=YYYY-MM-DD/fetches.json`. A date is late once
`Settings.silence_after_minutes` have passed since it was due (the time its DAG runs, when NSE
has normally published it); until then a caller may look again. The first fetch that finds it
late claims the date's one alert (the file `alerted`, created exclusively, so that neither two
runs nor a run's retries both send it); a date whose alert time passed more than
`silence_lookback_days` ago is history, loaded on purpose, and never alerts.

The alert tells two silences apart. Blocked: every fetch got an HTML page with a success status
where a file or JSON was expected, which is what a block or bot-challenge page looks like (NSE's
own "not here" is usually a 404). Not published: the file is simply not there yet.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

from include.nse.config import Settings
from include.nse.dates import IST
from include.nse.errors import NotPublished
from include.nse.lake import Lake, write_json

LAYER = "silence"
FETCHES = "fetches.json"
ALERTED = "alerted"


@dataclass(frozen=True)
class Watch:
    """A date that has not been published: when it was due, when it alerts, and every fetch."""

    dataset: str
    trade_date: dt.date
    due: dt.datetime
    alert_at: dt.datetime
    history_after: dt.datetime
    #: One entry per fetch: `at` (ISO time), `blocked`, `reason`, `url`.
    fetches: tuple[dict, ...]

    def late(self, now: dt.datetime) -> bool:
        return now >= self.alert_at

    def history(self, now: dt.datetime) -> bool:
        return now >= self.history_after

    @property
    def blocked(self) -> bool:
        """Every fetch got an HTML page with a success status: blocked, not late."""
        return bool(self.fetches) and all(f["blocked"] for f in self.fetches)

    def message(self, now: dt.datetime) -> str:
        """What the alert says: which silence, since when, and what the fetches got."""
        count = len(self.fetches)
        first = _ist(dt.datetime.fromisoformat(self.fetches[0]["at"]))
        last = self.fetches[-1]
        late = _duration(now - self.due)
        due = f"due {_ist(self.due):%H:%M} IST on {self.trade_date}, {late} ago"
        if self.blocked:
            head = (
                f"NSE is answering {self.dataset} for {self.trade_date} with a block page: "
                f"{'every one' if count > 1 else 'the one'} of {count} fetch(es) since "
                f"{first:%H:%M} IST got an HTML page with a success status where the file was "
                f"expected (a block or bot-challenge page, not a missing file); {due}"
            )
        else:
            some = sum(f["blocked"] for f in self.fetches)
            html = f", {some} of them an HTML page with a success status" if some else ""
            head = (
                f"NSE has not published {self.dataset} for {self.trade_date}: {count} fetch(es) "
                f"since {first:%H:%M} IST found nothing{html}; {due}"
            )
        at = _ist(dt.datetime.fromisoformat(last["at"]))
        return f"{head}\nLast fetch ({at:%H:%M} IST): {last['reason']} ({last['url']})"


def folder(lake: Lake, dataset: str, trade_date: dt.date) -> Path:
    return lake.partition(LAYER, dataset, trade_date)


def record(
    lake: Lake,
    dataset: str,
    trade_date: dt.date,
    error: NotPublished,
    *,
    due: dt.datetime,
    settings: Settings,
    now: dt.datetime | None = None,
) -> Watch:
    """Add one fetch that found `trade_date` not published; the date's watch with every fetch."""
    now = now or dt.datetime.now(dt.UTC)
    path = folder(lake, dataset, trade_date) / FETCHES
    fetches = json.loads(path.read_text()) if path.exists() else []
    fetches.append(
        {
            "at": now.isoformat(),
            "blocked": bool(getattr(error, "blocked", False)),
            "reason": error.reason,
            "url": error.url,
        }
    )
    write_json(path, fetches)
    alert_at = due + dt.timedelta(minutes=settings.silence_after_minutes)
    return Watch(
        dataset,
        trade_date,
        due,
        alert_at,
        alert_at + dt.timedelta(days=settings.silence_lookback_days),
        tuple(fetches),
    )


def claim_alert(lake: Lake, dataset: str, trade_date: dt.date) -> bool:
    """True for the one caller that may alert for the date; False once someone has."""
    path = folder(lake, dataset, trade_date) / ALERTED
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as marker:
        marker.write(dt.datetime.now(dt.UTC).isoformat() + "\n")
    return True


def release_alert(lake: Lake, dataset: str, trade_date: dt.date) -> None:
    """Give the claim back (the alert could not be sent): a later fetch tries again."""
    (folder(lake, dataset, trade_date) / ALERTED).unlink(missing_ok=True)


def _ist(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(IST)


def _duration(delta: dt.timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes // (24 * 60)} days"
