"""`lstmkit evaluate` for a language-model run: the loss on a text (nats per token, and bits per
character or perplexity), read in chunks as the run's training report reads its test text."""
from __future__ import annotations

from lstmkit.data.readers import read_text
from lstmkit.data.tokenizer import Tokenizer
from lstmkit.data.vocabulary import Vocabulary
from lstmkit.tasks.evaluation import read_run_recipe, write_report
from lstmkit.tasks.language_model.model import MODEL, describe_loss
from lstmkit.tasks.language_model.train import encode, score_text
from lstmkit.tasks.saved_model import load_model


def evaluate_main(recipe) -> int:
    options = recipe.evaluate
    loaded = load_model(options.model, MODEL, backend=options.backend)
    run = read_run_recipe(options.model)
    level = loaded.config.level
    vocab = Vocabulary.from_json(loaded.extras["vocab"])
    text = read_text(options.test, options.encoding or run.get("data", {}).get("encoding", "utf-8"))
    ids = encode(vocab, Tokenizer(level)(text), level, str(options.test))
    batch_size = run.get("training", {}).get("batch_size", 32)
    bptt = run.get("lm", {}).get("bptt", 100)
    loss = score_text(loaded.model, ids, batch_size, bptt, options.progress)
    print(f"test: {describe_loss(loss, level)}")
    report = {"level": level, "test_loss": loss, "test_tokens": ids.numel()}
    print(f"report: {write_report(options, report)}")
    return 0
