"""Data for the tasks: readers of standard formats, tokenizer and vocabulary, batching.

readers.py   labelled text: fastText lines (.gz/.bz2), CSV/TSV, one folder per class, JSON lines
text.py      word tokenizer, Vocabulary (0 = padding, 1 = UNK), LabelSet
batching.py  right-padded variable-length batches with lengths, bucketed by length
corpus.py, series.py, mnist.py: the language-model, forecasting and sequential-MNIST data.
"""
