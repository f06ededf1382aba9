"""Time stamps of a series: its date column found and parsed, its time step inferred, and the
stamps of the steps after its end (what `predict forecast` prints beside each forecast).

A date column is one named like a date (date, time, timestamp, month, ...) or else the first
column whose every cell parses as a date: ISO dates and date-times ("2016-07-01 00:00:00",
"2016-07-01") and months ("1949-01"). The step is a whole number of calendar months when every
stamp falls on the same day of a month at midnight and the gaps are equal in months (monthly and
yearly data: months differ in days), otherwise the most common gap between stamps.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

DATE_NAMES = ("date", "datetime", "timestamp", "time", "ds", "month", "day", "week", "period")
_MONTH = re.compile(r"^\d{4}-\d{1,2}$")


def parse_stamp(text: str) -> datetime | None:
    text = text.strip().strip('"')
    if _MONTH.match(text):
        year, month = text.split("-")
        return datetime(int(year), int(month), 1)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


@dataclass
class Stamps:
    column: str                 # the date column's name
    values: list[datetime]      # one per row, in file order
    text_format: str            # how the file writes them (strftime)

    def step(self) -> tuple[int, timedelta]:
        """(months, gap): a step of `months` calendar months (0: none), or of `gap`."""
        pairs = list(zip(self.values, self.values[1:]))
        if not pairs:
            return 0, timedelta(0)
        first = self.values[0]
        monthly = all(v.day == first.day and v.time() == datetime.min.time() for v in self.values)
        if monthly:
            months = Counter((b.year - a.year) * 12 + b.month - a.month for a, b in pairs)
            step, _ = months.most_common(1)[0]
            if step > 0 and months[step] == len(pairs):
                return step, timedelta(0)
        gap, _ = Counter(b - a for a, b in pairs).most_common(1)[0]
        return 0, gap

    def rows_per_day(self) -> float:
        months, gap = self.step()
        if months:
            return 1 / (30.0 * months)
        return timedelta(days=1) / gap if gap > timedelta(0) else 0.0

    def after_end(self, count: int) -> list[str]:
        """The stamps of the `count` steps after the last row, written as the file writes them."""
        months, gap = self.step()
        last, stamps = self.values[-1], []
        for k in range(1, count + 1):
            if months:
                total = last.month - 1 + k * months
                stamp = last.replace(year=last.year + total // 12, month=total % 12 + 1)
            else:
                stamp = last + k * gap
            stamps.append(stamp.strftime(self.text_format))
        return stamps


def _format_of(text: str) -> str:
    text = text.strip().strip('"')
    if _MONTH.match(text):
        return "%Y-%m"
    if "T" in text:
        return "%Y-%m-%dT%H:%M:%S"
    return "%Y-%m-%d %H:%M:%S" if ":" in text else "%Y-%m-%d"


def find_stamps(header: list[str], rows: list[list[str]], skip: set[int]) -> Stamps | None:
    """The date column of a CSV (header + data rows), skipping the columns in `skip`; None if
    there is none."""
    named = [i for i, name in enumerate(header) if name.strip().lower() in DATE_NAMES]
    candidates = named + [i for i in range(len(header)) if i not in named]
    for i in candidates:
        if i in skip or not rows or any(len(row) <= i for row in rows):
            continue
        values = [parse_stamp(row[i]) for row in rows]
        if all(v is not None for v in values):
            return Stamps(header[i].strip(), values, _format_of(rows[-1][i]))
    return None
