"""`lstmkit predict sentiment`: classify texts with a trained model (or ensemble)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from lstmkit.data.batching import text_batches
from lstmkit.data.labels import LabelSet
from lstmkit.data.readers import read_texts
from lstmkit.data.tokenizer import Tokenizer
from lstmkit.data.vocabulary import Vocabulary
from lstmkit.errors import UsageError
from lstmkit.tasks.saved_model import LoadedModel, load_model
from lstmkit.tasks.sentiment.config import PredictRecipe
from lstmkit.tasks.sentiment.evaluate import predict_logits
from lstmkit.tasks.sentiment.model import MODEL
from lstmkit.tasks.sentiment.texts import encode_texts, kept_tokens
from lstmkit.training import select_device


def load(directory: Path, device: torch.device | str = "cpu",
         backend: str = "auto") -> tuple[LoadedModel, Vocabulary, LabelSet]:
    """The trained model of a run folder or checkpoint, its vocabulary and labels."""
    loaded = load_model(directory, MODEL, device=device, backend=backend)
    return (loaded, Vocabulary.from_json(loaded.extras["vocab"]),
            LabelSet.from_json(loaded.extras["labels"]))


def _texts(options) -> list[str]:
    if options.texts and options.file:
        raise UsageError("give texts as arguments or --file, not both")
    if options.texts:
        texts = [t for t in options.texts if t.strip()]
    elif options.file:
        texts = [e.text for e in read_texts(options.file, options.format, options.text_column,
                                            options.encoding)]
    elif not sys.stdin.isatty():
        texts = [e.text for e in read_texts("-", encoding=options.encoding)]
    else:
        raise UsageError("no texts: give them as arguments, with --file FILE, or on standard input")
    if not texts:
        raise UsageError("no texts to classify (all empty)")
    return texts


def main(recipe: PredictRecipe) -> int:
    options = recipe.predict
    device = select_device(options.device)
    loaded, vocab, labels = load(options.model, device, options.backend)
    texts = _texts(options)
    tokenizer = Tokenizer("text", lowercase=loaded.config.lowercase)
    sequences = encode_texts([tokenizer(t) for t in texts], vocab, kept_tokens(loaded.config))
    logits = predict_logits(loaded.model, text_batches(sequences, None, 256), device)
    for text, p in zip(texts, torch.softmax(logits, 1)):
        best = int(p.argmax())
        if options.json:
            print(json.dumps({"label": labels.names[best], "probability": round(float(p[best]), 4),
                              "probabilities": dict(zip(labels.names, p.tolist())), "text": text},
                             ensure_ascii=False))
        else:
            print(f"{labels.names[best]}\t{float(p[best]):.4f}\t{text}")
    return 0
