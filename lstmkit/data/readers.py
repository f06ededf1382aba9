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

Text is UTF-8 unless `encoding` names another codec (--encoding); a file that does not decode is
refused with the line and the encoding it most likely has. HTML line breaks (`<br />`, as in
scraped reviews) read as spaces.

Folders as data sets are unpacked: a folder holding `train/` and `test/` (aclImdb) stands for its
`train/` (or `test/`, for test data: `data_set_part`); a class folder named `unsup`/`unlabelled`
holds unlabelled texts, never a class (`read_unlabelled` reads them, e.g. for pretraining).

    read_text(path) -> str      a whole text file (a language model's corpus)
"""
from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import json
import os
import re
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from lstmkit.errors import UsageError

FORMATS = ("auto", "fasttext", "table", "folders", "jsonl")
UNLABELLED_FOLDERS = ("unsup", "unlabelled", "unlabeled")
_LINE_BREAK_TAG = re.compile(r"<br\s*/?>", re.IGNORECASE)
# Codecs whose line ends are not the byte b"\n": such files are decoded whole, then split.
_WIDE_CODECS = ("utf-16", "utf-32")
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


def check_encoding(encoding: str) -> str:
    """The codec's canonical name; UsageError for an unknown one."""
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise UsageError(f"--encoding {encoding!r} is not a known text encoding; try utf-8, "
                         f"cp1252, latin-1 or utf-16") from None


def likely_encoding(raw: bytes) -> str:
    """The encoding a file that is not UTF-8 most likely has, from a sample of its bytes."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or raw[:200].count(0) > 20:
        return "utf-16"
    try:
        raw.decode("cp1252")
    except UnicodeDecodeError:
        return "latin-1"
    # Windows' quotes and dashes (bytes 0x80-0x9f) are control codes in latin-1.
    return "cp1252" if any(0x80 <= b <= 0x9F for b in raw) else "latin-1"


def _undecodable(where: str, encoding: str, error: UnicodeDecodeError, sample: bytes) -> str:
    guess = likely_encoding(sample)
    hint = f"it looks like {guess}: pass --encoding {guess}" if encoding == "utf-8" and \
        guess != "utf-8" else "pass the right --encoding"
    name = "UTF-8" if encoding == "utf-8" else encoding
    return f"not valid {name} (byte {error.start}); {hint}, or save the file as UTF-8"


def _decoded_lines(path: Path, problems: _Problems, encoding: str = "utf-8"):
    """(line number, text) per line, decoded strictly; a bad line names its number and the
    encoding the file most likely has."""
    encoding = check_encoding(encoding)
    try:
        with _open_binary(path) as f:
            if encoding.startswith(_WIDE_CODECS):
                yield from _decoded_whole(path, f.read(), encoding)
                return
            for number, raw in enumerate(f, start=1):
                try:
                    line = raw.decode(encoding)
                except UnicodeDecodeError as error:
                    problems.bad(f"{path}:{number}", _undecodable(f"{path}:{number}", encoding,
                                                                  error, raw))
                    continue
                if number == 1:
                    line = line.removeprefix("\ufeff")  # byte-order mark
                yield number, line.rstrip("\r\n")
    except (OSError, EOFError, zlib.error) as error:  # unreadable file, corrupt .gz / .bz2 stream
        raise UsageError(f"{path}: cannot read ({error})") from None


def _decoded_whole(path: Path, raw: bytes, encoding: str):
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as error:
        raise UsageError(f"{path}: {_undecodable(str(path), encoding, error, raw[:4096])}") from None
    for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        yield number, line


def decode_file(path: Path, encoding: str = "utf-8") -> str:
    """A whole file as text (UsageError naming the likely encoding when it does not decode)."""
    raw = path.read_bytes()
    try:
        return raw.decode(check_encoding(encoding)).removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        start = max(0, error.start - 2000)
        raise UsageError(f"{path}: {_undecodable(str(path), encoding, error, raw[start:start + 4096])}") \
            from None


def clean_text(text: str, fold: bool = False) -> str:
    """HTML line breaks read as spaces, the ends stripped; `fold`: all whitespace as single spaces."""
    text = _LINE_BREAK_TAG.sub(" ", text)
    return " ".join(text.split()) if fold else text.strip()


def read_fasttext(path: Path, problems: _Problems, encoding: str = "utf-8") -> list[Example]:
    examples = []
    for number, line in _decoded_lines(path, problems, encoding):
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
        examples.append(Example(clean_text(" ".join(rest), fold=True), label, f"{path}:{number}"))
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
               labelled: bool = True, encoding: str = "utf-8") -> list[Example]:
    plain = path.name.lower().removesuffix(".gz").removesuffix(".bz2")
    delimiter = "\t" if plain.endswith(".tsv") else ","
    lines = _decoded_lines(path, problems, encoding)
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
        examples.append(Example(clean_text(text), label, where))
    return examples


def read_jsonl(path: Path, problems: _Problems, text_column=None, label_column=None,
               labelled: bool = True, encoding: str = "utf-8") -> list[Example]:
    examples = []
    for number, line in _decoded_lines(path, problems, encoding):
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
        examples.append(Example(clean_text(text), None if label is None else str(label), where))
    return examples


def _pick_key(record: dict, wanted, defaults) -> str | None:
    if wanted is not None:
        return str(wanted) if str(wanted) in record else None
    lowered = {k.lower(): k for k in record}
    return next((lowered[name] for name in defaults if name in lowered), None)


def data_set_part(path: Path, part: str) -> Path:
    """A data set's root folder (aclImdb/, holding train/ and test/) stands for its `part`."""
    if path.is_dir() and (path / part).is_dir() and not (path / part).name in UNLABELLED_FOLDERS:
        print(f"{path}: reading its {part}/ folder", file=sys.stderr)
        return path / part
    return path


def _class_folders(root: Path) -> tuple[list[Path], list[Path]]:
    """(class folders, unlabelled-text folders) of a folder data set."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    unlabelled = [p for p in folders if p.name.lower() in UNLABELLED_FOLDERS]
    return [p for p in folders if p not in unlabelled], unlabelled


def _folder_texts(folder: Path, problems: _Problems, encoding: str):
    """(text, where) of every non-empty text file in `folder`, in name order."""
    for file in sorted(folder.iterdir()):
        if not file.is_file() or file.name.startswith("."):
            continue
        try:
            raw = file.read_bytes()
            text = clean_text(raw.decode(encoding), fold=True)
        except UnicodeDecodeError as error:
            problems.bad(f"{file}:1", _undecodable(str(file), encoding, error, raw))
            continue
        if not text:
            problems.bad(f"{file}:1", "empty file")
            continue
        yield text, f"{file}:1"


def read_folders(root: Path, problems: _Problems, encoding: str = "utf-8") -> list[Example]:
    classes, unlabelled = _class_folders(root)
    if len(classes) < 2:
        hint = (f"; {root.name}/ holds {', '.join(p.name + '/' for p in classes + unlabelled)}: "
                f"point at the folder of the labelled part" if classes + unlabelled else "")
        raise UsageError(f"{root}: expected one sub-folder per class (e.g. pos/, neg/), found "
                         f"{[p.name for p in classes]}{hint}")
    for folder in unlabelled:
        print(f"{folder}: unlabelled texts, not a class (--unlabelled {folder} uses them for "
              f"language-model pretraining)", file=sys.stderr)
    encoding = check_encoding(encoding)
    return [Example(text, folder.name, where) for folder in classes
            for text, where in _folder_texts(folder, problems, encoding)]


def read_examples(path: str | os.PathLike, fmt: str = "auto", text_column=None, label_column=None,
                  skip_bad: bool = False, encoding: str = "utf-8", part: str = "train") -> ReadResult:
    """Labelled examples from `path` (see the module docstring); never an empty result. `part`:
    which part of a data set folder (train/ or test/) a root folder stands for."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    path = data_set_part(path, part)
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt != "folders" and path.is_dir():
        raise UsageError(f"{path}: a folder, but --format {fmt} reads a file")
    problems = _Problems(skip_bad)
    if fmt == "fasttext":
        examples = read_fasttext(path, problems, encoding)
    elif fmt == "table":
        examples = read_table(path, problems, text_column, label_column, encoding=encoding)
    elif fmt == "jsonl":
        examples = read_jsonl(path, problems, text_column, label_column, encoding=encoding)
    else:
        examples = read_folders(path, problems, encoding)
    if not examples:
        detail = f" ({len(problems.skipped)} bad lines skipped)" if problems.skipped else ""
        raise UsageError(f"{path}: no examples found{detail}; expected {fmt} data")
    return ReadResult(examples, problems.skipped)


def read_unlabelled(path: str | os.PathLike, encoding: str = "utf-8") -> list[str]:
    """Unlabelled texts: a folder of text files (aclImdb's train/unsup/), or a file with one text
    per line. Empty texts are left out."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    problems = _Problems(True)
    if path.is_dir():
        texts = [text for text, _ in _folder_texts(path, problems, check_encoding(encoding))]
    else:
        texts = [clean_text(line, fold=True)
                 for _, line in _decoded_lines(path, _Problems(False), encoding) if line.strip()]
    if not texts:
        raise UsageError(f"{path}: no texts found (a folder of text files, or one text per line)")
    return [t for t in texts if t]


def read_texts(path: str | os.PathLike, fmt: str = "lines", text_column=None,
               encoding: str = "utf-8") -> list[Example]:
    """Unlabelled texts to predict: one per line ("lines"), or the text column of a table / jsonl."""
    path = Path(path) if str(path) != "-" else None
    problems = _Problems(False)
    if path is None:
        raw = sys.stdin.buffer.read()
        try:
            text = raw.decode(check_encoding(encoding))
        except UnicodeDecodeError as error:
            raise UsageError(f"<stdin>: {_undecodable('<stdin>', encoding, error, raw)}") from None
        return [Example(clean_text(line), None, f"<stdin>:{n}")
                for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    if fmt == "table":
        return read_table(path, problems, text_column, labelled=False, encoding=encoding)
    if fmt == "jsonl":
        return read_jsonl(path, problems, text_column, labelled=False, encoding=encoding)
    return [Example(clean_text(line), None, f"{path}:{n}")
            for n, line in _decoded_lines(path, problems, encoding) if line.strip()]


def read_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """A whole text file, refused when missing, undecodable or empty."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"text file not found: {path}")
    text = decode_file(path, encoding)
    if not text.strip():
        raise UsageError(f"{path} is empty (or only whitespace); a language model needs text to learn from")
    return text
