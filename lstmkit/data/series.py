"""Time series from CSV files: reading with an explicit missing-value policy, chronological splits,
scaling fitted on the training part only, and (window -> horizon) samples.

Missing values (an empty cell, NA, NaN, null, ?; a blank line between data rows counts as a row
of missing values, blank lines at the end are ignored) are handled by one of three documented policies:
  refuse       (default) stop with the file, line and column of the first gap;
  interpolate  fill gaps linearly between the neighbouring observed values of the same column
               (gaps at the start or end take the nearest observed value); which values were
               filled is kept (Series.imputed), so they are reported and never scored as targets;
  drop         remove every row with a gap in any used column (this shortens the series and
               breaks a regular time step; use only when that is acceptable).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstmkit.data.timestamps import Stamps, find_stamps
from lstmkit.errors import UsageError

MISSING_POLICIES = ("refuse", "interpolate", "drop")
MISSING_MARKERS = {"", "na", "nan", "null", "none", "?", "n/a"}


@dataclass
class Series:
    """Numeric columns of a CSV file, in file order. values: (T, C) float64."""
    path: str
    columns: list[str]
    values: np.ndarray
    line_numbers: np.ndarray  # (T,) line in the file of each row, for error messages
    imputed: np.ndarray | None = None  # (T, C) True where --missing interpolate filled a value
    stamps: Stamps | None = None       # the date column's time stamps, when the file has one

    def imputed_summary(self) -> dict:
        """How many values were filled in, per column, and the file lines of the first ones."""
        if self.imputed is None or not self.imputed.any():
            return {"count": 0}
        rows = np.flatnonzero(self.imputed.any(axis=1))
        return {"count": int(self.imputed.sum()),
                "by_column": {name: int(self.imputed[:, c].sum())
                              for c, name in enumerate(self.columns) if self.imputed[:, c].any()},
                "first_lines": self.line_numbers[rows[:5]].tolist()}


def read_series_csv(path: str | Path, columns: list[str], missing: str = "refuse",
                    encoding: str = "utf-8") -> Series:
    """Read the named columns of a CSV file with a header row as float64 (and its date column's
    time stamps, when it has one)."""
    if missing not in MISSING_POLICIES:
        raise UsageError(f"--missing {missing!r} is not a policy; allowed: {', '.join(MISSING_POLICIES)}")
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"CSV file not found: {path}")
    from lstmkit.data.readers import decode_file

    try:
        rows = list(csv.reader(io.StringIO(decode_file(path, encoding), newline="")))
    except csv.Error as error:  # a NUL byte, a field beyond csv's size limit: not a text table
        raise UsageError(f"{path} is not a readable CSV table ({error})") from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise UsageError(f"{path} is empty; expected a header row naming the columns, then one row per time step")
    header = [name.strip() for name in rows[0]]
    unknown = [name for name in columns if name not in header]
    if unknown:
        raise UsageError(f"{path}: unknown column(s) {', '.join(map(repr, unknown))}; "
                         f"the file has: {', '.join(header)}")
    indices = [header.index(name) for name in columns]
    data = rows[1:]
    while data and not any(cell.strip() for cell in data[-1]):
        data.pop()  # blank lines at the end are not time steps
    values, lines = [], []
    for line_number, row in enumerate(data, start=2):
        if not any(cell.strip() for cell in row):
            row = [""] * len(header)  # a blank line between rows is a time step with every value missing
        if len(row) != len(header):
            raise UsageError(f"{path}:{line_number}: {len(row)} fields, but the header has {len(header)}")
        values.append([_parse_cell(row[i], path, line_number, header[i]) for i in indices])
        lines.append(line_number)
    if not values:
        raise UsageError(f"{path} has a header but no data rows")
    table = np.array(values, dtype=np.float64)  # (T, C), NaN where a value is missing
    line_numbers = np.array(lines)
    stamps = find_stamps(header, data, set(indices))
    gaps = np.isnan(table)  # (T, C)
    table, line_numbers = _apply_missing_policy(table, line_numbers, columns, missing, path)
    if stamps is not None and len(line_numbers) != len(gaps):  # --missing drop removed rows
        kept = set(line_numbers.tolist())
        stamps.values = [v for v, line in zip(stamps.values, lines) if line in kept]
    imputed = gaps if missing == "interpolate" else None
    return Series(str(path), list(columns), table, line_numbers, imputed, stamps)


def _parse_cell(cell: str, path: Path, line_number: int, column: str) -> float:
    text = cell.strip()
    if text.lower() in MISSING_MARKERS:
        return float("nan")
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{path}:{line_number}: column {column!r} holds {cell!r}, which is not a number; "
                         f"numbers and empty/NA cells (missing values) are allowed") from None
    if not np.isfinite(value):
        raise UsageError(f"{path}:{line_number}: column {column!r} holds {cell!r}; only finite numbers are allowed")
    return value


def _apply_missing_policy(table, line_numbers, columns, missing, path):
    gaps = np.isnan(table)  # (T, C)
    if not gaps.any():
        return table, line_numbers
    row, col = map(int, np.argwhere(gaps)[0])
    if missing == "refuse":
        raise UsageError(f"{path}:{line_numbers[row]}: column {columns[col]!r} has a missing value "
                         f"({int(gaps.sum())} in all); choose --missing interpolate or --missing drop")
    if missing == "drop":
        keep = ~gaps.any(axis=1)
        if not keep.any():
            raise UsageError(f"{path}: every row has a missing value, nothing is left after --missing drop")
        return table[keep], line_numbers[keep]
    # interpolate: linear in the row index, per column; np.interp holds the ends at the nearest value.
    filled = table.copy()
    steps = np.arange(len(table))
    for c in range(table.shape[1]):
        observed = ~gaps[:, c]
        if not observed.any():
            raise UsageError(f"{path}: column {columns[c]!r} has no values at all; nothing to interpolate from")
        filled[:, c] = np.interp(steps, steps[observed], table[observed, c])
    return filled, line_numbers


def split_points(length: int, valid_fraction: float, test_fraction: float) -> tuple[int, int]:
    """Chronological split: rows [0, a) train, [a, b) validation, [b, length) test."""
    for name, fraction in (("--valid-fraction", valid_fraction), ("--test-fraction", test_fraction)):
        if not 0.0 <= fraction < 1.0:
            raise UsageError(f"{name} must be in [0, 1), got {fraction}")
    if valid_fraction + test_fraction >= 1.0:
        raise UsageError("--valid-fraction + --test-fraction must leave rows for training (sum < 1)")
    test_start = length - int(round(length * test_fraction))
    valid_start = test_start - int(round(length * valid_fraction))
    return valid_start, test_start


def forecast_origins(start: int, end: int, window: int, horizon: int, stride: int = 1) -> np.ndarray:
    """Origins t (index of the first forecast step) whose H targets lie in [start, end) and whose
    window of inputs [t - window, t) exists (it may reach back into an earlier part)."""
    first = max(start, window)
    last = end - horizon  # inclusive
    if last < first:
        return np.zeros(0, dtype=np.int64)
    return np.arange(first, last + 1, stride, dtype=np.int64)


def check_enough_rows(length, window, horizon, valid_start, test_start, path="the series"):
    """Refuse a series too short to give every part at least one (window, horizon) sample."""
    parts = {"training": (0, valid_start), "validation": (valid_start, test_start), "test": (test_start, length)}
    for name, (start, end) in parts.items():
        if len(forecast_origins(start, end, window, horizon)) == 0:
            raise UsageError(
                f"{path} has {length} rows: too few for --window {window} and --horizon {horizon} "
                f"(the {name} part, rows {start}..{end}, holds no full forecast); "
                f"use a longer series, a shorter window or horizon, or other split fractions")


class StandardScaler:
    """Per-column (x - mean) / std, fitted on the training rows only so no test statistics leak in."""

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        self.mean = np.asarray(mean, dtype=np.float64)  # (C,)
        self.std = np.asarray(std, dtype=np.float64)  # (C,)

    @classmethod
    def fit(cls, train_values: np.ndarray) -> "StandardScaler":
        std = train_values.std(axis=0)
        return cls(train_values.mean(axis=0), np.where(std > 0, std, 1.0))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean) / self.std

    def inverse_column(self, values: np.ndarray, column: int) -> np.ndarray:
        return values * self.std[column] + self.mean[column]

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "StandardScaler":
        """Inverse of `to_dict`; ValueError saying what is wrong with `data` (a file's contents)."""
        parts = [data.get(key) if isinstance(data, dict) else None for key in ("mean", "std")]
        if not all(isinstance(p, list) and p and all(isinstance(v, (int, float))
                                                     and not isinstance(v, bool) for v in p)
                   for p in parts) or len(parts[0]) != len(parts[1]):
            raise ValueError('expected {"mean": [numbers], "std": [numbers]}, one per column')
        mean, std = (np.asarray(p, dtype=np.float64) for p in parts)
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise ValueError("the scaler needs finite means and finite standard deviations > 0")
        return cls(mean, std)


def make_windows(scaled: np.ndarray, target_column: int, origins: np.ndarray, window: int, horizon: int):
    """Inputs (N, window, C) and targets (N, horizon) as float32 arrays, from a scaled (T, C) table."""
    offsets = np.arange(-window, 0)  # (window,)
    inputs = scaled[origins[:, None] + offsets[None, :]]  # (N, window, C)
    targets = scaled[origins[:, None] + np.arange(horizon)[None, :], target_column]  # (N, horizon)
    return inputs.astype(np.float32), targets.astype(np.float32)
