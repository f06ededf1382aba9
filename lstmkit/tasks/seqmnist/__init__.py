"""Sequential MNIST: `lstmkit train seqmnist`, digits read as sequences of rows or pixels.

config.py   the settings (data, model, training) and their flags
model.py    LSTM -> linear head on the last step
train.py    read the .npz, train, score the test images
"""
from lstmkit.tasks.seqmnist.config import NAME, TrainRecipe
from lstmkit.tasks.seqmnist.evaluate import evaluate_main
from lstmkit.tasks.seqmnist.model import MODEL
from lstmkit.tasks.seqmnist.train import main as train_main

HELP = ("classify MNIST digits read as a sequence of rows or pixels "
        "(.npz with x_train, y_train, x_test, y_test)")

__all__ = ["NAME", "HELP", "MODEL", "TrainRecipe", "train_main", "evaluate_main"]
