"""Character- and word-level language models: `lstmkit train lm`, sampled by `lstmkit generate`.

config.py     the settings (data, model, TBPTT, training) and their flags; the generate options
model.py      embedding -> LSTM -> full or adaptive softmax, with one-step streaming
train.py      stateful truncated BPTT over one long text, the test score, the curve
generate.py   sampling (temperature, top-k, seed), one LSTM step per token
"""
from lstmkit.tasks.language_model.config import NAME, GenerateRecipe, TrainRecipe, check_recipe
from lstmkit.tasks.language_model.generate import main as generate_main
from lstmkit.tasks.language_model.evaluate import evaluate_main
from lstmkit.tasks.language_model.model import MODEL
from lstmkit.tasks.language_model.train import main as train_main

HELP = "train a character- or word-level language model on a text file (sample it with `lstmkit generate`)"

__all__ = ["NAME", "HELP", "MODEL", "TrainRecipe", "GenerateRecipe", "check_recipe", "train_main",
           "evaluate_main", "generate_main"]
