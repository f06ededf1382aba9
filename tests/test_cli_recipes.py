"""One mechanism turns the typed recipes into every command's flags: every default shown in
--help, old spellings kept as hidden aliases, and bad values refused where they are parsed (one
line, exit status 2) before any data is read."""
import argparse
import dataclasses

import pytest

from lstmkit import cli
from lstmkit.errors import UsageError
from lstmkit.recipe import add_flags, check_values, from_args, from_json, to_json
from lstmkit.tasks import TASKS, forecast, language_model, seqmnist, sentiment
from lstmkit.training import TrainConfig
from lstmkit.training.config import backend_names


def subparsers_of(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def commands() -> dict[str, argparse.ArgumentParser]:
    """Every leaf command: 'train sentiment', 'generate', 'demo', ..."""
    found = {}
    for name, parser in subparsers_of(cli.build_parser()).items():
        if any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
            found.update({f"{name} {task}": p for task, p in subparsers_of(parser).items()})
        else:
            found[name] = parser
    return found


def test_every_command_is_there():
    assert set(commands()) == {"demo", "experiment", "generate", "export", "train sentiment", "train lm",
                               "train forecast", "train seqmnist", "predict sentiment",
                               "predict forecast", "evaluate", "bench", "selfcheck", "view"}


@pytest.mark.parametrize("command", sorted(commands()))
def test_help_shows_every_default(command):
    parser = commands()[command]
    # One of a required group (view: --text or --file) has no default: it must be given.
    required = {id(a) for group in parser._mutually_exclusive_groups if group.required
                for a in group._group_actions}
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or not action.option_strings or action.dest == "help":
            continue
        if action.required or id(action) in required or action.dest == "version":
            continue
        assert "(default: " in action.help, (command, action.option_strings)
    text = parser.format_help()
    assert "--layers" not in text and "--embed-size" not in text and "--unidirectional" not in text


def parse(recipe_cls, argv):
    parser = argparse.ArgumentParser()
    add_flags(parser, recipe_cls)
    return from_args(recipe_cls, parser.parse_args(argv))


def test_old_spellings_are_hidden_aliases():
    old = parse(sentiment.TrainRecipe, ["--train", "t", "--layers", "2", "--unidirectional",
                                        "--no-lowercase"])
    assert (old.model.num_layers, old.model.bidirectional, old.model.lowercase) == (2, False, False)
    new = parse(sentiment.TrainRecipe, ["--train", "t", "--num-layers", "2", "--no-bidirectional"])
    assert (new.model.num_layers, new.model.bidirectional) == (2, False)
    assert parse(sentiment.TrainRecipe, ["--train", "t"]).model.bidirectional is True
    lm = parse(language_model.TrainRecipe, ["--text", "t", "--embed-size", "8", "--cutoffs", "5,9"])
    assert (lm.model.embedding_dim, lm.model.cutoffs) == (8, (5, 9))
    assert parse(language_model.TrainRecipe, ["--text", "t", "--embedding-dim", "9"]).model.embedding_dim == 9


def test_same_flag_names_for_the_same_things():
    for name, task in TASKS.items():
        fields = {f.name for f in dataclasses.fields(task.TrainRecipe().model)}
        assert {"hidden_size", "num_layers"} <= fields, name
    assert "embedding_dim" in {f.name for f in dataclasses.fields(language_model.TrainRecipe().model)}
    for name, task in TASKS.items():  # every training command takes --backend with its choices
        assert parse(task.TrainRecipe, {"sentiment": ["--train", "t"], "lm": ["--text", "t"],
                                        "forecast": ["--csv", "c", "--target", "y"],
                                        "seqmnist": ["--npz", "n"]}[name]
                     + ["--backend", "reference"]).training.backend == "reference"


@pytest.mark.parametrize("argv", [
    ["train", "sentiment", "--train", "MISSING.txt"],
    ["train", "lm", "--text", "MISSING.txt"],
    ["train", "forecast", "--csv", "MISSING.csv", "--target", "y"],
    ["train", "seqmnist", "--npz", "MISSING.npz"],
])
def test_a_backend_typo_is_refused_before_the_data_is_read(argv, tmp_path, capsys):
    assert cli.main(argv + ["--backend", "nonsense", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "--backend" in err and "invalid choice: 'nonsense'" in err and "MISSING" not in err
    for name in backend_names():
        assert name in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, message", [
    (["train", "sentiment", "--train", "t", "--hidden-size", "0"], "--hidden-size must be >= 1, got 0"),
    (["train", "sentiment", "--train", "t", "--dropout", "2"], "--dropout must be between 0 and 1"),
    (["train", "lm", "--text", "t", "--warmup-steps", "-1"], "--warmup-steps must be >= 0, got -1"),
    (["train", "lm", "--text", "t", "--cutoffs", "5,x"], "--cutoffs wants comma-separated whole numbers"),
    (["train", "forecast", "--csv", "c", "--target", "y", "--window", "x"], "--window wants a whole number, got 'x'"),
    (["train", "seqmnist", "--npz", "n", "--limit-train", "-5"], "--limit-train must be >= 0, got -5"),
    (["predict", "sentiment", "--model", "m", "--backend", "fast"], "invalid choice: 'fast'"),
    (["train", "sentiment"], "the following arguments are required: --train"),
])
def test_bad_flags_get_one_line_and_exit_2(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"lstmkit {' '.join(argv[:2]) if argv[0] != 'generate' else 'generate'}")


def test_settings_built_in_code_get_the_same_checks():
    with pytest.raises(UsageError, match="--lr must be > 0, got 0"):
        check_values(TrainConfig(lr=0))
    with pytest.raises(UsageError, match="--optimizer must be one of adam, adamw, sgd, got 'rmsprop'"):
        check_values(TrainConfig(optimizer="rmsprop"))
    with pytest.raises(UsageError, match="--backend must be one of"):
        check_values(TrainConfig(backend="fast"))
    check_values(TrainConfig())


def test_model_configs_round_trip_through_json():
    for config in (sentiment.TrainRecipe().model,
                   dataclasses.replace(language_model.TrainRecipe().model, cutoffs=(3, 7)),
                   forecast.TrainRecipe().model, seqmnist.TrainRecipe().model):
        assert from_json(type(config), to_json(config)) == config
    with pytest.raises(UsageError, match="unknown setting\\(s\\) colour"):
        from_json(seqmnist.TrainRecipe().model.__class__, {"colour": 1})
