"""Sentiment (text classification): `lstmkit train sentiment` and `lstmkit predict sentiment`.

    lstmkit train sentiment --train reviews.ft.txt.bz2 --test test.ft.txt.bz2 --out runs/amazon
    lstmkit predict sentiment --model runs/amazon "Great value, works perfectly."

config.py       the settings (data, model, pretraining, transfer, training) and their flags
model.py        embedding -> (bi)LSTM -> pooling -> linear (+ hashed n-grams), ensembles
pretraining.py  language-model pretraining (Dai & Le 2015) and transfer from related labelled data
ensemble.py     K fine-tunings from one start, resumable member by member
train.py        the training command: read, tokenize, train, report beside the baseline
texts.py        the run's texts read and encoded once
bag.py          the n-gram bag fitted before the LSTM (naive-Bayes weighted logistic regression)
evaluate.py     logits, accuracy and F1, the bag's and the baseline's scores, the printed report,
                `lstmkit evaluate` of a sentiment run
baseline.py     bag-of-words tf-idf logistic regression (scikit-learn)
predict.py      the prediction command
"""
from lstmkit.tasks.sentiment.config import NAME, PredictRecipe, TrainRecipe, check_recipe
from lstmkit.tasks.sentiment.evaluate import evaluate_main
from lstmkit.tasks.sentiment.model import MODEL
from lstmkit.tasks.sentiment.predict import main as predict_main
from lstmkit.tasks.sentiment.train import main as train_main

HELP = "classify texts (e.g. reviews as positive/negative) with an embedding + (bi)LSTM model"

__all__ = ["NAME", "HELP", "MODEL", "TrainRecipe", "PredictRecipe", "check_recipe", "train_main",
           "predict_main", "evaluate_main"]
