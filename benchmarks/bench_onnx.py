"""Latency of exported models in ONNX Runtime against eager PyTorch, side by side in one process.

    python benchmarks/bench_onnx.py                 # writes results/onnx_latency.json and .md

Two models as `lstmkit export` ships them, at the task's default sizes: the sentiment classifier
(BiLSTM + n-gram bag, padded texts with their lengths) and one generation step of the character
language model (token and state in, scores and state out). Each at batch 1 and 32, ONNX Runtime on
as many threads as torch; eager torch as `lstmkit predict`/`generate` run it (no_grad, engine
auto, the fused step for generation). Median of interleaved samples; weights are random (latency
does not depend on them).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import torch

from lstmkit import deploy
from lstmkit.benchmark import interleaved, machine
from lstmkit.recipe import to_json
from lstmkit.tasks import language_model, sentiment
from lstmkit.tasks.saved_model import LoadedModel

RESULTS = Path(__file__).parent / "results"


def sentiment_model(vocab: int) -> LoadedModel:
    config = sentiment.TrainRecipe().model
    config.vocab_size, config.num_classes = vocab, 2
    return LoadedModel(sentiment.MODEL.build(config, "auto").eval(), config, {}, None)


def language_model_(vocab: int) -> LoadedModel:
    config = language_model.TrainRecipe().model
    config.vocab_size = vocab
    config.embedding_dim = config.embedding_dim or 64
    return LoadedModel(language_model.MODEL.build(config, "auto").eval(), config, {}, None)


def exported(kind, loaded: LoadedModel, folder: Path, name: str):
    path = folder / f"{name}.onnx"
    deploy.export(kind.export_form(loaded), path, "onnx", {"task": kind.task, "model": to_json(loaded.config),
                                                             "extras": {}})
    return deploy.ExportedModel(path)


def sentiment_inputs(batch: int, steps: int, vocab: int):
    generator = torch.Generator().manual_seed(batch)
    lengths = torch.randint(steps // 2, steps + 1, (batch,), generator=generator)
    lengths[0] = steps
    ids = torch.randint(1, vocab, (batch, steps), generator=generator)
    ids[torch.arange(steps)[None, :] >= lengths[:, None]] = 0
    return ids, lengths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--steps", type=int, default=64, help="tokens per text (sentiment)")
    parser.add_argument("--out", type=Path, default=RESULTS / "onnx_latency.json")
    args = parser.parse_args()
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as folder, torch.no_grad():
        folder = Path(folder)
        classifier = sentiment_model(20_000)
        lm = language_model_(65)
        onnx_classifier = exported(sentiment.MODEL, classifier, folder, "sentiment")
        step = language_model.export.GenerationStep(lm.model)
        onnx_step = exported(language_model.MODEL, lm, folder, "lm")
        for batch in (1, 32):
            ids, lengths = sentiment_inputs(batch, args.steps, 20_000)
            token = torch.randint(0, 65, (batch,))
            state = tuple(torch.zeros(lm.config.num_layers, batch, lm.config.hidden_size) for _ in range(2))
            times = interleaved({
                ("sentiment", "torch"): lambda: classifier.model(ids, lengths),
                ("sentiment", "onnxruntime"): lambda: onnx_classifier.run(ids, lengths),
                ("generation step", "torch"): lambda: step(token, *state),
                ("generation step", "onnxruntime"): lambda: onnx_step.run(token, *state),
            }, args.repeats)
            for model in ("sentiment", "generation step"):
                torch_s, ort_s = times[model, "torch"], times[model, "onnxruntime"]
                rows.append({"model": model, "batch": batch, "torch_ms": torch_s * 1e3, "onnxruntime_ms": ort_s * 1e3,
                             "speedup": torch_s / ort_s})
    result = {"rows": rows, "machine": machine(), "load_before": load_before, "load_after": os.getloadavg(),
              "steps": args.steps, "python": platform.python_version(),
              "sizes": {"sentiment": to_json(classifier.config), "lm": to_json(lm.config)}}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"ONNX Runtime vs eager torch, {machine()['cpu_model']}, {torch.get_num_threads()} threads, "
             f"torch {torch.__version__}; load {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after",
             "", "| model | batch | torch ms | onnxruntime ms | torch / onnxruntime |", "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['batch']} | {r['torch_ms']:.3f} | {r['onnxruntime_ms']:.3f} | {r['speedup']:.2f} |"
              for r in rows]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
