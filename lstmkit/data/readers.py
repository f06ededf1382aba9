"""Readers for text in the formats people have: labelled examples, texts to predict, plain text.

    read_examples(path, fmt="auto", text_column=None, label_column=None, skip_bad=False)
        -> ReadResult(examples=[Example(text, label, where)], skipped=[...messages])

Formats (fmt="auto" picks by path: a folder -> folders, *.jsonl -> jsonl, *.csv / *.tsv -> table,
anything else -> fasttext; a .gz or .bz2 suffix is decompressed on the fly):
- fasttext: `__label__X some text` per line (several leading labels: the first one is used).
- table: CSV or TSV with a header; `text_column` / `label_column` by name or 0-based index
  (defaults: a column named text/sentence/review/content and one named label/labels/sentiment/class).
- folders: one sub-folder per class holding one text file per example (the aclImdb layout
  `train/pos/*.txt`, `train/neg/*.txt`): the folder name is the label.
- jsonl: one JSON object per line with text and label keys (same defaults as table).

Every problem raises lstmkit.errors.UsageError("FILE:LINE: what was wrong; what is allowed").
With skip_bad=True, bad lines are skipped instead and listed in ReadResult.skipped (the caller
reports how many). Labels stay strings ("1", "pos", "2"): lstmkit.data.labels.LabelSet numbers them.

    read_text(path) -> str      a whole UTF-8 text file (a language model's corpus)
"""
from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from lstmkit.errors import UsageError

FORMATS = ("auto", "fasttext", "table", "folders", "jsonl")
TEXT_NAMES = ("text", "sentence", "review", "content", "body", "document")
LABEL_NAMES = ("label", "labels", "sentiment", "class", "category", "target", "y")


@dataclass
class Example:
    text: str
    label: str | None     # None when reading unlabelled text for prediction
    where: str = ""       # "file:line" for messages


@dataclass
class ReadResult:
    examples: list[Example] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)   # one message per skipped line


class _Problems:
    """Raise at the first bad line, or collect them when skipping was asked for."""

    def __init__(self, skip_bad: bool):
        self.skip_bad, self.skipped = skip_bad, []

    def bad(self, where: str, message: str) -> None:
        if not self.skip_bad:
            raise UsageError(f"{where}: {message}")
        self.skipped.append(f"{where}: {message}")


def detect_format(path: Path) -> str:
    if path.is_dir():
        return "folders"
    name = path.name.lower()
    for suffix in (".gz", ".bz2"):
        name = name.removesuffix(suffix)
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith((".csv", ".tsv")):
        return "table"
    return "fasttext"


def _open_binary(path: Path):
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".bz2"):
        return bz2.open(path, "rb")
    return open(path, "rb")


def _decoded_lines(path: Path, problems: _Problems):
    """(line number, text) per line, decoded strictly as UTF-8; a bad line names its number."""
    try:
        with _open_binary(path) as f:
            for number, raw in enumerate(f, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    problems.bad(f"{path}:{number}", f"not valid UTF-8 (byte {error.start} of the line);"
                                 " save the file as UTF-8")
                    continue
                if number == 1:
                    line = line.removeprefix("\ufeff")  # byte-order mark
                yield number, line.rstrip("\r\n")
    except (OSError, EOFError, zlib.error) as error:  # unreadable file, corrupt .gz / .bz2 stream
        raise UsageError(f"{path}: cannot read ({error})") from None


def read_fasttext(path: Path, problems: _Problems) -> list[Example]:
    examples = []
    for number, line in _decoded_lines(path, problems):
        if not line.strip():
            continue
        words = line.split()
        if not words[0].startswith("__label__") or words[0] == "__label__":
            problems.bad(f"{path}:{number}", f"expected '__label__X text', got {line[:40]!r}")
            continue
        label = words[0][len("__label__"):]
        rest = [w for w in words[1:] if not w.startswith("__label__")]
        if not rest:
            problems.bad(f"{path}:{number}", "a label but no text")
            continue
        examples.append(Example(" ".join(rest), label, f"{path}:{number}"))
    return examples


def _pick_column(wanted: str | int | None, header: list[str], defaults, what: str, where: str) -> int:
    lowered = [h.strip().lower() for h in header]
    if wanted is None:
        for name in defaults:
            if name in lowered:
                return lowered.index(name)
        raise UsageError(f"{where}: no {what} column among {header}; name it with "
                         f"--{what}-column (a header name or a 0-based index)")
    if isinstance(wanted, int) or str(wanted).isdigit():
        index = int(wanted)
        if index >= len(header):
            raise UsageError(f"{where}: {what} column {index} does not exist; the header has "
                             f"{len(header)} columns {header}")
        return index
    if str(wanted).lower() not in lowered:
        raise UsageError(f"{where}: unknown {what} column {wanted!r}; the header has {header}")
    return lowered.index(str(wanted).lower())


def read_table(path: Path, problems: _Problems, text_column=None, label_column=None,
               labelled: bool = True) -> list[Example]:
    plain = path.name.lower().removesuffix(".gz").removesuffix(".bz2")
    delimiter = "\t" if plain.endswith(".tsv") else ","
    lines = _decoded_lines(path, problems)
    numbered = list(lines)
    if not numbered:
        raise UsageError(f"{path}: empty file; expected a header line and rows")
    # csv handles quoted fields spanning lines; keep each record's first line number.
    # QUOTE_NONE for TSV: SST-2 style sentences contain bare quotes.
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    rows = csv.reader(io.StringIO("\n".join(text for _, text in numbered)), delimiter=delimiter,
                      quoting=quoting)
    numbers = [n for n, _ in numbered]
    try:
        header = next(rows)
    except StopIteration:  # only blank lines
        raise UsageError(f"{path}: empty file; expected a header line and rows") from None
    except csv.Error as error:
        raise UsageError(f"{path}:{numbers[0]}: unreadable header ({error})") from None
    text_i = _pick_column(text_column, header, TEXT_NAMES, "text", f"{path}:{numbers[0]}")
    label_i = _pick_column(label_column, header, LABEL_NAMES, "label", f"{path}:{numbers[0]}") \
        if labelled else None
    examples = []
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as error:
            problems.bad(f"{path}:{numbers[min(rows.line_num, len(numbers)) - 1]}", f"bad CSV ({error})")
            continue
        line_no = numbers[min(rows.line_num, len(numbers)) - 1]
        where = f"{path}:{line_no}"
        if not row or all(not cell.strip() for cell in row):
            continue
        needed = max(text_i, label_i if label_i is not None else 0)
        if len(row) <= needed:
            problems.bad(where, f"{len(row)} field(s); the header has {len(header)} "
                         f"(text in column {text_i}{'' if label_i is None else f', label in {label_i}'})")
            continue
        text = row[text_i].strip()
        label = row[label_i].strip() if label_i is not None else None
        if not text or (label_i is not None and not label):
            problems.bad(where, "empty text or label")
            continue
        examples.append(Example(text, label, where))
    return examples


def read_jsonl(path: Path, problems: _Problems, text_column=None, label_column=None,
               labelled: bool = True) -> list[Example]:
    examples = []
    for number, line in _decoded_lines(path, problems):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            problems.bad(where, f"not a JSON object ({error.msg} at column {error.colno})")
            continue
        if not isinstance(record, dict):
            problems.bad(where, f"expected a JSON object per line, got {type(record).__name__}")
            continue
        text_key = _pick_key(record, text_column, TEXT_NAMES)
        label_key = _pick_key(record, label_column, LABEL_NAMES) if labelled else None
        if text_key is None or (labelled and label_key is None):
            missing = "text" if text_key is None else "label"
            asked = text_column if missing == "text" else label_column
            problems.bad(where, f"no {missing} key ({asked!r} asked)" if asked else
                         f"no {missing} key among {sorted(record)}; name it with --{missing}-column")
            continue
        text, label = record[text_key], record[label_key] if label_key else None
        if not isinstance(text, str) or not text.strip():
            problems.bad(where, f"{text_key!r} must be a non-empty string")
            continue
        if labelled and not isinstance(label, (str, int, bool)):
            problems.bad(where, f"{label_key!r} must be a string or an integer, got {label!r}")
            continue
        examples.append(Example(text.strip(), None if label is None else str(label), where))
    return examples


def _pick_key(record: dict, wanted, defaults) -> str | None:
    if wanted is not None:
        return str(wanted) if str(wanted) in record else None
    lowered = {k.lower(): k for k in record}
    return next((lowered[name] for name in defaults if name in lowered), None)


def read_folders(root: Path, problems: _Problems) -> list[Example]:
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise UsageError(f"{root}: expected one sub-folder per class (e.g. pos/, neg/), found "
                         f"{[p.name for p in classes]}")
    examples = []
    for folder in classes:
        for file in sorted(folder.iterdir()):
            if not file.is_file() or file.name.startswith("."):
                continue
            try:
                text = file.read_bytes().decode("utf-8").strip()
            except UnicodeDecodeError as error:
                problems.bad(f"{file}:1", f"not valid UTF-8 (byte {error.start}); save it as UTF-8")
                continue
            if not text:
                problems.bad(f"{file}:1", "empty file")
                continue
            examples.append(Example(" ".join(text.split()), folder.name, f"{file}:1"))
    return examples


def read_examples(path: str | os.PathLike, fmt: str = "auto", text_column=None, label_column=None,
                  skip_bad: bool = False) -> ReadResult:
    """Labelled examples from `path` (see the module docstring); never an empty result."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt != "folders" and path.is_dir():
        raise UsageError(f"{path}: a folder, but --format {fmt} reads a file")
    problems = _Problems(skip_bad)
    if fmt == "fasttext":
        examples = read_fasttext(path, problems)
    elif fmt == "table":
        examples = read_table(path, problems, text_column, label_column)
    elif fmt == "jsonl":
        examples = read_jsonl(path, problems, text_column, label_column)
    else:
        examples = read_folders(path, problems)
    if not examples:
        detail = f" ({len(problems.skipped)} bad lines skipped)" if problems.skipped else ""
        raise UsageError(f"{path}: no examples found{detail}; expected {fmt} data")
    return ReadResult(examples, problems.skipped)


def read_texts(path: str | os.PathLike, fmt: str = "lines", text_column=None) -> list[Example]:
    """Unlabelled texts to predict: one per line ("lines"), or the text column of a table / jsonl."""
    path = Path(path) if str(path) != "-" else None
    problems = _Problems(False)
    if path is None:
        import sys
        raw = sys.stdin.buffer.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise UsageError(f"<stdin>: not valid UTF-8 (byte {error.start})") from None
        return [Example(line.strip(), None, f"<stdin>:{n}")
                for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    if fmt == "table":
        return read_table(path, problems, text_column, labelled=False)
    if fmt == "jsonl":
        return read_jsonl(path, problems, text_column, labelled=False)
    return [Example(line.strip(), None, f"{path}:{n}")
            for n, line in _decoded_lines(path, problems) if line.strip()]


def read_text(path: str | os.PathLike) -> str:
    """A whole UTF-8 text file, refused when missing, not UTF-8 or empty."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"text file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(f"{path} is not UTF-8 text (byte {error.start}); save it as UTF-8") from None
    if not text.strip():
        raise UsageError(f"{path} is empty (or only whitespace); a language model needs text to learn from")
    return text
