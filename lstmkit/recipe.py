"""Typed recipes: settings written once as dataclass fields, turned into command-line flags by one mechanism.

A settings class is a dataclass whose fields carry their help text, flag spelling and checks::

    @dataclass
    class ModelOptions:
        hidden_size: int = option(128, "units per LSTM direction", check=at_least(1))
        num_layers: int = option(1, "stacked LSTM layers", aliases=("--layers",), check=at_least(1))
        pooling: str = option("max", "how outputs become one vector", choices=("max", "mean"))
        vocab_size: int = option(0, flag=False)     # set from the data, never on the command line

A recipe is a dataclass whose fields are such sections; a section's default instance holds the
defaults this command uses (minGPT's per-class default config)::

    @dataclass
    class TrainRecipe:
        model: ModelOptions = section(ModelOptions)
        training: TrainConfig = section(lambda: TrainConfig(epochs=8), "training")

    add_flags(parser, TrainRecipe)        # one argument group per section, every default in --help
    recipe = from_args(TrainRecipe, args)

Flags are checked where they are parsed (type, range, choices), so a typo stops the command with
one line and exit status 2 before any data is read. Old spellings stay as hidden aliases. Booleans
that default to True get `--no-NAME` (and `--NAME`); those that default to False a plain switch.
`check_values(instance)` runs the same checks for settings built in code (UsageError).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, Callable

from lstmkit.errors import UsageError

_KEY = "lstmkit"
_KIND_WORDS = {int: "a whole number", float: "a number", str: "text", Path: "a path"}


@dataclasses.dataclass(frozen=True)
class _Option:
    help: str
    flag: str | bool | None           # None: --field-name; False: not a flag
    aliases: tuple[str, ...]          # hidden extra spellings of the same flag
    off_aliases: tuple[str, ...]      # hidden spellings that set a boolean to False
    choices: Any                      # a sequence, or a callable giving one when the parser is built
    check: Callable[[Any], str | None] | None   # value -> None, or what is wrong ("must be >= 1")
    parse: Callable[[str], Any] | None          # text -> value, instead of the annotated type
    metavar: str | None
    required: bool
    default_text: str | None          # how --help shows the default (None: the value itself)
    nargs: str | None                 # a positional argument taking this many values ("*", "+")


def option(default: Any = None, help: str = "", *, flag: str | bool | None = None,
           aliases: tuple[str, ...] = (), off_aliases: tuple[str, ...] = (), choices: Any = None,
           check: Callable[[Any], str | None] | None = None, parse: Callable[[str], Any] | None = None,
           metavar: str | None = None, required: bool = False, default_text: str | None = None,
           nargs: str | None = None, default_factory: Callable[[], Any] | None = None) -> Any:
    """A dataclass field that is also a command-line flag (see the module docstring); with
    `nargs`, a positional argument instead."""
    meta = {_KEY: _Option(help, flag, tuple(aliases), tuple(off_aliases), choices, check, parse,
                          metavar, required, default_text, nargs)}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def section(factory: Callable[[], Any], title: str | None = None) -> Any:
    """A recipe field holding one settings dataclass; `factory()` gives its defaults."""
    return dataclasses.field(default_factory=factory, metadata={_KEY + ".section": title})


# ---- checks ------------------------------------------------------------------------------------

def at_least(minimum: float) -> Callable[[Any], str | None]:
    return lambda value: None if value is None or value >= minimum else f"must be >= {minimum}"


def above(minimum: float) -> Callable[[Any], str | None]:
    return lambda value: None if value is None or value > minimum else f"must be > {minimum}"


def between(low: float, high: float, *, high_open: bool = False) -> Callable[[Any], str | None]:
    """low <= value <= high (value < high with high_open)."""
    def check(value):
        if value is None or (low <= value < high if high_open else low <= value <= high):
            return None
        return f"must be between {low} and {high}{' (exclusive)' if high_open else ''}"
    return check


def int_list(text: str) -> tuple[int, ...]:
    """'5,10,20' -> (5, 10, 20)."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"wants comma-separated whole numbers like 5,10,20, got {text!r}") from None
    if not values:
        raise ValueError(f"wants at least one number, got {text!r}")
    return values


# ---- dataclass introspection -------------------------------------------------------------------

def _options(cls) -> list[tuple[dataclasses.Field, _Option, Any]]:
    """(field, option, resolved type) of every option field of a settings class."""
    hints = typing.get_type_hints(cls)
    return [(f, f.metadata[_KEY], hints[f.name]) for f in dataclasses.fields(cls) if _KEY in f.metadata]


def _sections(recipe_cls) -> list[tuple[dataclasses.Field, str, Any]]:
    """(field, title, default instance) of every section of a recipe."""
    result = []
    for f in dataclasses.fields(recipe_cls):
        if _KEY + ".section" in f.metadata:
            default = f.default_factory()
            result.append((f, f.metadata[_KEY + ".section"] or f.name, default))
    return result


def _base_type(annotation) -> Any:
    """int for `int | None`, and so on."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return members[0]
    return annotation


def flag_name(field: dataclasses.Field) -> str:
    opt = field.metadata[_KEY]
    return opt.flag if isinstance(opt.flag, str) else "--" + field.name.replace("_", "-")


def _parser_for(name: str, opt: _Option, kind) -> Callable[[str], Any]:
    """The argparse `type`: text -> value, checked, or argparse.ArgumentTypeError naming the flag."""
    if opt.parse is not None:
        convert = opt.parse
    elif typing.get_origin(kind) is tuple:
        convert = int_list
    else:
        convert = kind

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError as error:
            detail = str(error) if opt.parse or convert is int_list else \
                f"wants {_KIND_WORDS.get(kind, 'a value')}, got {text!r}"
            raise argparse.ArgumentTypeError(f"{name} {detail}") from None
        problem = opt.check(value) if opt.check else None
        if problem:
            raise argparse.ArgumentTypeError(f"{name} {problem}, got {text}")
        return value
    return parse


def _shown(value: Any, opt: _Option) -> str:
    if opt.default_text is not None:
        return opt.default_text
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return "none" if value is None else str(value)


def _add_option(group, field: dataclasses.Field, opt: _Option, kind, default: Any) -> None:
    name = flag_name(field)
    choices = opt.choices() if callable(opt.choices) else opt.choices
    if opt.nargs is not None:
        group.add_argument(field.name, nargs=opt.nargs, choices=choices, metavar=opt.metavar,
                           help=opt.help)
        return
    help_text = opt.help + ("" if opt.required or "default" in opt.help
                            else f" (default: {_shown(default, opt)})")
    common = dict(dest=field.name, help=help_text)
    if _base_type(kind) is bool:
        if default is True or default is None:
            action = group.add_argument(name, action=argparse.BooleanOptionalAction, default=default,
                                        **common)
            action.help = help_text  # some Pythons append their own "(default: ...)"
        else:
            group.add_argument(name, action="store_true", default=default, **common)
        for alias in opt.off_aliases:
            group.add_argument(alias, dest=field.name, action="store_false", default=argparse.SUPPRESS,
                               help=argparse.SUPPRESS)
        return
    convert = _parser_for(name, opt, _base_type(kind))
    group.add_argument(name, type=convert, default=default, choices=choices, metavar=opt.metavar,
                       required=opt.required, **common)
    for alias in opt.aliases:  # each spelling names itself when refused
        group.add_argument(alias, dest=field.name, type=_parser_for(alias, opt, _base_type(kind)),
                           choices=choices, metavar=opt.metavar,
                           default=argparse.SUPPRESS, help=argparse.SUPPRESS)


# ---- public API --------------------------------------------------------------------------------

def add_flags(parser: argparse.ArgumentParser, recipe_cls) -> None:
    """One argument group per section of `recipe_cls`, one flag per option field."""
    seen: dict[str, str] = {}
    for section_field, title, default in _sections(recipe_cls):
        group = parser.add_argument_group(title)
        for field, opt, kind in _options(type(default)):
            if opt.flag is False:
                continue
            if field.name in seen:  # one namespace: every field name once per command
                raise TypeError(f"{recipe_cls.__name__}: {field.name} in {seen[field.name]} and "
                                f"{section_field.name}")
            seen[field.name] = section_field.name
            _add_option(group, field, opt, kind, getattr(default, field.name))


def from_args(recipe_cls, args: argparse.Namespace):
    """The recipe the parsed flags describe (fields that are not flags keep their defaults)."""
    sections = {}
    for section_field, _, default in _sections(recipe_cls):
        values = {f.name: getattr(args, f.name) for f, opt, _ in _options(type(default))
                  if opt.flag is not False and hasattr(args, f.name)}
        sections[section_field.name] = dataclasses.replace(default, **values)
    return recipe_cls(**sections)


def check_values(settings) -> None:
    """Run the fields' checks on settings built in code; UsageError naming the flag."""
    for field, opt, kind in _options(type(settings)):
        value = getattr(settings, field.name)
        name = flag_name(field) if opt.flag is not False else f"setting {field.name!r}"
        choices = opt.choices() if callable(opt.choices) else opt.choices
        if choices is not None and value is not None and value not in choices:
            raise UsageError(f"{name} must be one of {', '.join(map(str, choices))}, "
                             f"got {str(value)[:40]!r}")
        problem = opt.check(value) if opt.check else None
        if problem:
            raise UsageError(f"{name} {problem}, got {str(value)[:40]}")


def to_json(settings) -> dict:
    """A settings dataclass as JSON-able values (paths as strings, tuples as lists)."""
    def plain(value):
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        return value
    return {f.name: plain(getattr(settings, f.name)) for f in dataclasses.fields(settings)}


def _typed(value: Any, kind: Any) -> tuple[bool, Any]:
    """(whether `value`, read from JSON, is of the annotated `kind`, the value as that kind)."""
    optional = kind is not _base_type(kind)
    kind = _base_type(kind)
    if value is None:
        return optional, None
    if kind is bool:
        return isinstance(value, bool), value
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if kind is str:
        return isinstance(value, str), value
    if kind is Path:
        return isinstance(value, str), Path(value) if isinstance(value, str) else value
    if typing.get_origin(kind) is tuple:
        member = typing.get_args(kind)[0]
        if not isinstance(value, (list, tuple)):
            return False, value
        items = [_typed(item, member) for item in value]
        return all(ok for ok, _ in items), tuple(item for _, item in items)
    return True, value


def _kind_words(kind: Any) -> str:
    kind = _base_type(kind)
    if typing.get_origin(kind) is tuple:
        return f"a list of {_kind_words(typing.get_args(kind)[0]).removeprefix('a ')}s"
    return {bool: "true or false", **_KIND_WORDS}.get(kind, "a value")


def from_json(cls, data: dict):
    """Inverse of `to_json`: unknown keys and values of another type are refused (UsageError
    naming the setting); `check_values` then checks ranges and choices. A missing key takes its
    default, so settings added later read older files."""
    if not isinstance(data, dict):
        raise UsageError(f"the settings must be a JSON object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    unknown = sorted(set(data) - {f.name for f in fields})
    if unknown:
        raise UsageError(f"unknown setting(s) {', '.join(str(u)[:40] for u in unknown)} for "
                         f"{cls.__name__}")
    values = {}
    for name, value in data.items():
        ok, values[name] = _typed(value, hints[name])
        if not ok:
            raise UsageError(f"setting {name!r} must be {_kind_words(hints[name])}, got "
                             f"{json.dumps(value)[:40]}")
    return cls(**values)
