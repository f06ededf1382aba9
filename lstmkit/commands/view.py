"""`lstmkit view --model DIR (--text TEXT | --file F)`: see inside a trained model, in a browser.

Writes one self-contained HTML page (no network, opens from disk): the input coloured by a chosen
unit's cell state or gate, every gate of that unit and the model's running prediction on hover, the
units ranked by scores, and a probe for units whose cell follows a feature of the text.
"""
from __future__ import annotations

from pathlib import Path

from lstmkit.errors import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser("view", help="an interactive page of a trained model's gates on an input",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True,
                        help="run folder of `lstmkit train lm|sentiment|forecast` (uses its best/) or a checkpoint")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="the text to read (language and sentiment models); this or --file")
    source.add_argument("--file", type=Path,
                        help="a text file (language and sentiment models) or a CSV with the model's "
                             "columns (forecasters); this or --text")
    parser.add_argument("--encoding", default="utf-8",
                        help="text encoding of --file (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("view.html"), help="the page to write (default: %(default)s)")
    parser.add_argument("--probe", metavar="REGEX",
                        help="find units whose cell follows the matches of REGEX in the text (inside a match, "
                             "the position in it, the steps to its end), e.g. '\"[^\"]*\"' or '[^\\n]*\\n' "
                             "(default: none)")
    parser.add_argument("--max-mb", type=float, default=4.5,
                        help="largest page size in MB; a long input of a wide model then holds the top-ranked "
                             "units only (default: %(default)s)")
    parser.set_defaults(func=main)


def _read_text(path: Path, encoding: str) -> str:
    from lstmkit.data.readers import decode_file

    try:
        text = decode_file(path, encoding)
    except FileNotFoundError:
        raise UsageError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder; give a text file") from None
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    if not text.strip():
        raise UsageError(f"{path} is empty; give the text to view")
    return text


def _source(args, input_kind: str) -> str:
    if input_kind == "series":
        if args.file is None:
            raise UsageError("a forecaster reads a series: give --file with a CSV of the model's columns")
        if args.probe:
            raise UsageError("--probe looks for text features; a forecaster reads a series")
        return str(args.file)
    if args.file is not None:
        return _read_text(args.file, args.encoding)
    if not args.text.strip():
        raise UsageError("--text is empty; give the text to view")
    return args.text


def _write(path: Path, page: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    try:
        temporary.write_text(page, encoding="utf-8")
        temporary.replace(path)
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror}") from None


def main(args) -> int:
    from lstmkit.view import load, page_data, probe, render
    from lstmkit.view.probe import compile_probe

    if args.probe:
        try:
            compile_probe(args.probe)
        except ValueError as error:
            raise UsageError(str(error)) from None
    if not args.max_mb > 0:
        raise UsageError(f"--max-mb must be > 0, got {args.max_mb}")
    if args.out.is_dir():
        raise UsageError(f"--out {args.out} is a folder; give a file name such as {args.out / 'view.html'}")
    model = load(args.model)
    source = _source(args, model.input_kind)
    print(f"reading the input through the {model.task} model ...", flush=True)
    shown, traces, prediction = model.view(source)
    hits = []
    if args.probe:
        try:
            hits = probe(traces, shown.tokens, shown.joiner, args.probe)
        except ValueError as error:
            raise UsageError(str(error)) from None
        print(f"probe {args.probe!r}: units whose cell follows it, by |correlation|")
        for hit in hits:
            print(f"  {hit.label:<28} unit {hit.unit:>4}  {hit.feature:<9}  r = {hit.correlation:+.3f}  "
                  f"({hit.steps} steps)")
    data = page_data(shown, traces, prediction, title=f"lstmkit view: {model.title}",
                     subtitle=f"{len(shown.tokens):,} steps; prediction: {prediction.signal_name}",
                     probe_pattern=args.probe, probe_hits=hits, max_bytes=int(args.max_mb * 1e6))
    page = render(data)
    _write(args.out, page)
    budget = data["budget"]
    units = (f"all {budget['total']} units" if budget["shown"] == budget["total"] else
             f"{budget['shown']} of {budget['total']} units (the top-ranked; raise --max-mb for more)")
    print(f"page: {args.out} ({len(page.encode('utf-8')) / 1e6:.2f} MB, {units}); open it in a browser")
    return 0
