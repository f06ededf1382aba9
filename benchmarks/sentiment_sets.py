"""The sentiment data sets of ≥ 2,000 texts that the shared data gives, written as a new user would
have them (never into the repository): each set is (training file, test file, extra flags).

    amazon-books, -dvd, -electronics, -kitchen   one product domain: 1,600 train / 400 test reviews
                                                 (the domain of each line: amazon_domains.txt)
    amazon                                       all four: 6,400 / 1,600
    sst2-2k, sst2-10k                            a seeded sample of SST-2's training phrases;
                                                 test: SST-2's 872 test sentences
    sst2                                         all 60,614 phrases, --valid dev.tsv (6,735)
    imdb-2k                                      2,000 labelled aclImdb training reviews, 80/20
    imdb                                         aclImdb as unpacked: --train aclImdb --test aclImdb
                                                 (its train/ and test/; train/unsup is not a class)
"""
from __future__ import annotations

import bz2
import csv
import random
from pathlib import Path

DOMAINS = {"b": "books", "d": "dvd", "e": "electronics", "k": "kitchen"}
DOMAIN_FILE = Path(__file__).resolve().parent / "amazon_domains.txt"
SETS = ("amazon-books", "amazon-dvd", "amazon-electronics", "amazon-kitchen", "sst2-2k",
        "sst2-10k", "imdb-2k", "amazon", "sst2", "imdb")
SMALL = SETS[:7]


def _fasttext(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"__label__{label} {' '.join(text.split())}\n" for label, text in rows),
                    encoding="utf-8")
    return path


def _amazon_domain(root: Path, work: Path, domain: str) -> tuple[Path, Path]:
    codes = [line for line in DOMAIN_FILE.read_text().splitlines() if not line.startswith("#")]
    paths = []
    for part, code_line in zip(("train", "test"), codes):
        lines = bz2.open(root / f"amazon_reviews/{part}.ft.txt.bz2", "rt", encoding="utf-8").read()
        kept = [line.split(" ", 1) for line, code in zip(lines.splitlines(), code_line)
                if DOMAINS[code] == domain]
        paths.append(_fasttext(work / f"amazon-{domain}" / f"{part}.ft.txt",
                               [(label.removeprefix("__label__"), text) for label, text in kept]))
    return paths[0], paths[1]


def _sst2_sample(root: Path, work: Path, size: int) -> Path:
    with open(root / "sst2/train.tsv", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    header, body = rows[0], rows[1:]
    random.Random(0).shuffle(body)
    path = work / f"sst2-{size // 1000}k" / "train.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join("\t".join(r) for r in [header] + body[:size]) + "\n", encoding="utf-8")
    return path


def _imdb_sample(imdb: Path, work: Path, size: int = 2000) -> tuple[Path, Path]:
    reviews = [(label, file) for label in ("pos", "neg")
               for file in sorted((imdb / "train" / label).iterdir())]
    random.Random(0).shuffle(reviews)
    chosen = [(label, file.read_text(encoding="utf-8")) for label, file in reviews[:size]]
    cut = size * 4 // 5
    return (_fasttext(work / "imdb-2k" / "train.ft.txt", chosen[:cut]),
            _fasttext(work / "imdb-2k" / "test.ft.txt", chosen[cut:]))


def build(name: str, root: Path, work: Path, imdb: Path | None) -> list[str]:
    """The `lstmkit train sentiment` data flags of set `name` (files written under `work`)."""
    if name.startswith("amazon-"):
        train, test = _amazon_domain(root, work, name.removeprefix("amazon-"))
        return ["--train", str(train), "--test", str(test)]
    if name == "amazon":
        return ["--train", str(root / "amazon_reviews/train.ft.txt.bz2"),
                "--test", str(root / "amazon_reviews/test.ft.txt.bz2")]
    if name in ("sst2-2k", "sst2-10k"):
        size = 2000 if name == "sst2-2k" else 10000
        return ["--train", str(_sst2_sample(root, work, size)), "--test", str(root / "sst2/test.tsv")]
    if name == "sst2":
        return ["--train", str(root / "sst2/train.tsv"), "--valid", str(root / "sst2/dev.tsv"),
                "--test", str(root / "sst2/test.tsv")]
    if imdb is None:
        raise FileNotFoundError(f"{name} needs aclImdb unpacked: tar xzf "
                                f"{root / 'imdb/aclImdb.tar.gz'} -C DIR, then --imdb DIR/aclImdb")
    if name == "imdb-2k":
        train, test = _imdb_sample(imdb, work)
        return ["--train", str(train), "--test", str(test)]
    return ["--train", str(imdb), "--test", str(imdb)]


def hold_out(data: list[str], fraction: float, work: Path) -> list[str]:
    """Data flags for choosing a recipe without the test set: a seeded `fraction` of the training
    file becomes the test file (the real test file and any --valid are dropped)."""
    train = Path(data[data.index("--train") + 1])
    lines = train.read_text(encoding="utf-8").splitlines()
    header, body = (lines[:1], lines[1:]) if train.suffix == ".tsv" else ([], lines)
    order = list(range(len(body)))
    random.Random(1).shuffle(order)
    cut = int(len(body) * fraction)
    folder = work / "holdout" / train.parent.name
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, rows in (("train", sorted(order[cut:])), ("dev", sorted(order[:cut]))):
        path = folder / f"{name}{train.suffix if train.suffix == '.tsv' else '.ft.txt'}"
        path.write_text("\n".join(header + [body[i] for i in rows]) + "\n", encoding="utf-8")
        paths.append(str(path))
    return ["--train", paths[0], "--test", paths[1]]
