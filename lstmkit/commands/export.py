"""`lstmkit export --model DIR --format onnx|pt2 --out FILE`: one file that ships a trained model.

The file holds the graph (ONNX, or a torch.export archive) and the task, model settings and
extras (vocabulary, labels, scaler) that `lstmkit predict` and `lstmkit generate` need to run it
without the checkpoint: `--model FILE` there. Before it says it is done, the command runs the
written file beside the checkpoint's model on several batch sizes and lengths.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lstmkit import __version__, deploy
from lstmkit.errors import UsageError
from lstmkit.recipe import add_flags, from_args, option, section, to_json
from lstmkit.tasks import TASKS
from lstmkit.tasks.saved_model import load_model
from lstmkit.training.checkpoint import load_checkpoint, run_or_checkpoint_dir

# The largest difference between the file's outputs and the model's that counts as the same model:
# float32 rounding of the same arithmetic in another order.
TOLERANCE = 1e-4


@dataclass
class ExportOptions:
    model: Path | None = option(None, "run folder (its best/) or checkpoint folder of any task",
                                required=True, metavar="DIR")
    out: Path | None = option(None, "the file to write (.onnx or .pt2)", required=True, metavar="FILE")
    format: str | None = option(None, "onnx (onnxruntime, needs lstmkit[onnx]) or pt2 (torch.export)",
                                choices=deploy.FORMATS, default_text="from --out's suffix")


@dataclass
class ExportRecipe:
    export: ExportOptions = section(ExportOptions, "export")


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="write a trained model as ONNX or a torch.export archive",
                                   description="Write one file that ships a trained model (ONNX or a torch.export archive) with what "
                                               "`lstmkit predict` and `lstmkit generate` need to run it.")
    add_flags(parser, ExportRecipe)
    parser.set_defaults(func=lambda args: run(from_args(ExportRecipe, args).export))


def run(options: ExportOptions) -> int:
    fmt = options.format or options.out.suffix.lstrip(".")
    if fmt not in deploy.FORMATS:
        raise UsageError(f"--out {options.out} ends neither in .onnx nor .pt2: name the format with --format")
    if options.out.suffix != f".{fmt}":
        raise UsageError(f"--out {options.out}: a {fmt} file ends in .{fmt} (predict and generate go by it)")
    if not options.out.parent.is_dir():
        raise UsageError(f"--out {options.out}: folder {options.out.parent} does not exist")
    task = TASKS.get(load_checkpoint(run_or_checkpoint_dir(options.model), task=None).task)
    if task is None:
        raise UsageError(f"{options.model}: its task is not one lstmkit exports ({', '.join(TASKS)})")
    loaded = load_model(options.model, task.MODEL)
    form = task.MODEL.export_form(loaded)
    metadata = {"task": task.NAME, "model": to_json(loaded.config), "extras": loaded.extras,
                "lstmkit": __version__}
    print(f"exporting the {task.NAME} model of {options.model} as {fmt} ...", flush=True)
    worst = deploy.export(form, options.out, fmt, metadata)
    checked = 1 + len(form.checks)
    if worst > TOLERANCE:
        options.out.unlink(missing_ok=True)
        raise UsageError(f"the exported file's outputs differ from the model's by {worst:.1e} (more than "
                         f"{TOLERANCE:.0e}); nothing was written: please report this")
    size = options.out.stat().st_size / 1e6
    print(f"wrote {options.out} ({size:.2f} MB): inputs {', '.join(form.input_names)}, outputs "
          f"{', '.join(form.output_names)}; on {checked} example batches it gives the model's outputs "
          f"within {worst:.1e}")
    return 0
