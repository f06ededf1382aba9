"""Data for the tasks: readers of the formats people have, one tokenizer, one vocabulary, batching.

readers.py     labelled text (fastText lines, CSV/TSV, one folder per class, JSON lines; .gz/.bz2),
               texts to predict, plain text files
tokenizer.py   Tokenizer with named strategies: char, word (with <eos> per line), text
vocabulary.py  Vocabulary: tokens <-> ids, optional padding and unknown tokens, JSON
labels.py      LabelSet: class names <-> indices
batching.py    DataLoader batches: text bucketed by length, rows of tensors; sharded under torchrun
streams.py     a language model's token stream: parallel streams and BPTT chunks
series.py      CSV time series: missing values, chronological splits, scaling, windows
mnist.py       MNIST images as sequences of rows or pixels
"""
