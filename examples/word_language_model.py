"""A word-level LSTM language model, written the way PyTorch programs usually are: with nn.LSTM.

This file never mentions lstmkit. tests/test_real_program.py runs it unmodified twice, once as it
is and once with torch.nn.LSTM swapped for lstmkit.LSTM (`lstmkit.swap_into_torch`), and checks
that both train to the same loss.

    python examples/word_language_model.py --data ../shared/data/ptb/ptb.train.txt --epochs 1
"""
import argparse
import math
import time

import torch
import torch.nn as nn


class Corpus:
    def __init__(self, path, max_words=None):
        self.word_to_index = {}
        ids = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                for word in line.split() + ["<eos>"]:
                    ids.append(self.word_to_index.setdefault(word, len(self.word_to_index)))
                if max_words and len(ids) >= max_words:
                    break
        self.ids = torch.tensor(ids)


def batchify(ids, batch_size):
    steps = ids.size(0) // batch_size
    return ids[: steps * batch_size].view(batch_size, steps).t().contiguous()   # (T, B)


class RNNModel(nn.Module):
    def __init__(self, vocab, emsize, nhid, nlayers, dropout):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(vocab, emsize)
        self.rnn = nn.LSTM(emsize, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, vocab)
        self.nlayers, self.nhid = nlayers, nhid

    def forward(self, x, hidden):
        emb = self.drop(self.encoder(x))
        output, hidden = self.rnn(emb, hidden)
        return self.decoder(self.drop(output)), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        return (weight.new_zeros(self.nlayers, bsz, self.nhid), weight.new_zeros(self.nlayers, bsz, self.nhid))


def repackage_hidden(h):
    return h.detach() if isinstance(h, torch.Tensor) else tuple(repackage_hidden(v) for v in h)


def train(args):
    torch.manual_seed(args.seed)
    corpus = Corpus(args.data, args.max_words)
    data = batchify(corpus.ids, args.batch_size)
    model = RNNModel(len(corpus.word_to_index), args.emsize, args.nhid, args.nlayers, args.dropout)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    criterion = nn.CrossEntropyLoss()
    losses = []
    for epoch in range(args.epochs):
        model.train()
        hidden = model.init_hidden(args.batch_size)
        start = time.time()
        for i in range(0, data.size(0) - 1, args.bptt):
            seq_len = min(args.bptt, data.size(0) - 1 - i)
            x, y = data[i:i + seq_len], data[i + 1:i + 1 + seq_len].reshape(-1)
            hidden = repackage_hidden(hidden)
            optimizer.zero_grad()
            output, hidden = model(x, hidden)
            loss = criterion(output.view(-1, output.size(-1)), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            optimizer.step()
            losses.append(loss.item())
        print(f"epoch {epoch + 1}: loss {losses[-1]:.4f}, ppl {math.exp(losses[-1]):.1f}, "
              f"{time.time() - start:.1f}s")
    return losses


def main(argv=None):
    parser = argparse.ArgumentParser(description="word-level LSTM language model")
    parser.add_argument("--data", required=True)
    parser.add_argument("--max-words", type=int, default=None)
    parser.add_argument("--emsize", type=int, default=64)
    parser.add_argument("--nhid", type=int, default=64)
    parser.add_argument("--nlayers", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--lr", type=float, default=20.0)
    parser.add_argument("--clip", type=float, default=0.25)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--bptt", type=int, default=35)
    parser.add_argument("--seed", type=int, default=1111)
    return train(parser.parse_args(argv))


if __name__ == "__main__":
    main()
