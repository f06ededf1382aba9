"""Readers, tokenizer, vocabulary and batching on tiny files written to tmp_path."""
import bz2
import gzip
import json

import pytest
import torch

from lstmkit.data.batching import LengthBuckets, text_batches, truncate
from lstmkit.data.labels import LabelSet
from lstmkit.data.readers import read_examples, read_texts, read_unlabelled
from lstmkit.data.tokenizer import Tokenizer
from lstmkit.data.vocabulary import PAD, UNK, Vocabulary
from lstmkit.errors import UsageError

PAD_INDEX, UNK_INDEX = 0, 1  # the sentiment vocabulary puts padding, then <unk>, first


def text_vocabulary(tokenized, **options):
    return Vocabulary.build(tokenized, pad=PAD, unk=UNK, **options)

FASTTEXT = "__label__2 Great book: loved it\n\n__label__1 Awful. Broke on day one\n"


@pytest.mark.parametrize("suffix, opener", [("", open), (".gz", gzip.open), (".bz2", bz2.open)])
def test_fasttext_plain_and_compressed(tmp_path, suffix, opener):
    path = tmp_path / f"reviews.ft.txt{suffix}"
    with opener(path, "wt", encoding="utf-8") as f:
        f.write(FASTTEXT)
    examples = read_examples(path).examples
    assert [(e.text, e.label) for e in examples] == [("Great book: loved it", "2"),
                                                     ("Awful. Broke on day one", "1")]
    assert examples[1].where == f"{path}:3"


def test_csv_tsv_columns_by_name_and_index(tmp_path):
    (tmp_path / "a.csv").write_text('id,review,stars\n1,"Nice, really nice",pos\n2,"Bad\nvery bad",neg\n')
    got = read_examples(tmp_path / "a.csv", text_column="review", label_column="stars").examples
    assert [(e.text, e.label) for e in got] == [("Nice, really nice", "pos"), ("Bad\nvery bad", "neg")]
    (tmp_path / "b.tsv").write_text('sentence\tlabel\nit \'s "fine" \t1\nmeh\t0\n')
    got = read_examples(tmp_path / "b.tsv").examples   # default column names
    assert [(e.text, e.label) for e in got] == [('it \'s "fine"', "1"), ("meh", "0")]
    got = read_examples(tmp_path / "b.tsv", text_column="0", label_column=1).examples
    assert got[1].label == "0"


def test_folders_and_jsonl_with_string_and_multiclass_labels(tmp_path):
    for label, texts in {"neg": ["bad"], "neutral": ["ok"], "pos": ["good", "great"]}.items():
        (tmp_path / "train" / label).mkdir(parents=True)
        for i, text in enumerate(texts):
            (tmp_path / "train" / label / f"{i}.txt").write_text(text)
    got = read_examples(tmp_path / "train").examples
    assert sorted((e.text, e.label) for e in got) == [("bad", "neg"), ("good", "pos"),
                                                      ("great", "pos"), ("ok", "neutral")]
    lines = [{"text": "fine", "label": 3}, {"text": "poor", "label": 1}, {"text": "top", "label": 5}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    got = read_examples(tmp_path / "d.jsonl").examples
    assert [e.label for e in got] == ["3", "1", "5"]
    assert LabelSet.build(e.label for e in got).names == ["1", "3", "5"]


@pytest.mark.parametrize("name, content, message", [
    ("bad.ft.txt", "__label__1 fine\nno label here\n", r"bad.ft.txt:2: expected '__label__X text'"),
    ("bad.ft.txt", "__label__1\n", r"bad.ft.txt:1: a label but no text"),
    ("empty.ft.txt", "", r"empty.ft.txt: no examples found"),
    ("cols.csv", "text,label\nfine,1\nonly-text\n", r"cols.csv:3: 1 field\(s\)"),
    ("nolabel.csv", "text,score\nfine,1\n", r"nolabel.csv:1: no label column among"),
    ("bad.jsonl", '{"text": "a", "label": 1}\n{oops\n', r"bad.jsonl:2: not a JSON object"),
    ("miss.jsonl", '{"text": "a"}\n', r"miss.jsonl:1: no label key"),
    ("empty.csv", "", r"empty.csv: empty file"),
])
def test_bad_input_names_file_and_line(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(UsageError, match=message):
        read_examples(tmp_path / name)


def test_unknown_label_column_and_invalid_utf8(tmp_path):
    (tmp_path / "a.csv").write_text("text,label\nfine,1\n")
    with pytest.raises(UsageError, match=r"a.csv:1: unknown label column 'stars'"):
        read_examples(tmp_path / "a.csv", label_column="stars")
    (tmp_path / "b.ft.txt").write_bytes(b"__label__1 ok\n__label__2 caf\xe9 latin-1\n")
    with pytest.raises(UsageError, match=r"b.ft.txt:2: not valid UTF-8"):
        read_examples(tmp_path / "b.ft.txt")


def test_skip_bad_is_explicit_and_counted(tmp_path):
    (tmp_path / "b.ft.txt").write_bytes(b"__label__1 ok\njunk\n__label__2 caf\xe9\n__label__2 good\n")
    result = read_examples(tmp_path / "b.ft.txt", skip_bad=True)
    assert [e.text for e in result.examples] == ["ok", "good"]
    assert len(result.skipped) == 2 and result.skipped[0].endswith("got 'junk'")


def test_read_texts_lines_and_table(tmp_path):
    (tmp_path / "t.txt").write_text("first text\n\nsecond\n")
    assert [e.text for e in read_texts(tmp_path / "t.txt")] == ["first text", "second"]
    (tmp_path / "t.csv").write_text("id,text\n1,hello\n")
    assert [e.text for e in read_texts(tmp_path / "t.csv", "table")] == ["hello"]


def test_tokenizer_and_vocabulary_with_unk():
    assert Tokenizer("text", lowercase=True)("I didn't LIKE it!! 4.5 stars, well-made") == [
        "i", "did", "n't", "like", "it", "!", "!", "4.5", "stars", ",", "well-made"]
    vocab = text_vocabulary([["a", "b", "a"], ["a", "c", "b"]], min_freq=2)
    assert vocab.tokens == ["<pad>", "<unk>", "a", "b"]
    # Unknown words map to UNK (1), never to padding (0).
    assert vocab.encode(["a", "zzz", "b"]) == [2, UNK_INDEX, 3]
    assert text_vocabulary([["a", "b", "a", "c"]], max_size=3).tokens == ["<pad>", "<unk>", "a"]
    assert Vocabulary.from_json(vocab.to_json()).tokens == vocab.tokens
    with pytest.raises(UsageError, match="only the label"):
        LabelSet.build(["1", "1"])
    with pytest.raises(UsageError, match=r"f:3: label 'x' never appears"):
        LabelSet(["a", "b"]).encode("x", "f:3")


def test_batches_are_right_padded_bucketed_and_cover_everything():
    sequences = [[5] * n for n in [3, 1, 7, 2, 9, 4, 6, 8]] + [truncate([], 10)]
    labels = list(range(9))
    batches = list(text_batches(sequences, labels, batch_size=4, seed=0, bucket_factor=1))
    seen = sorted(i for b in batches for i in b.index.tolist())
    assert seen == list(range(9))
    for b in batches:
        assert b.ids.shape == (len(b), int(b.lengths.max()))
        for row, length in enumerate(b.lengths.tolist()):
            assert (b.ids[row, length:] == PAD_INDEX).all() and length >= 1
        assert torch.equal(b.labels, b.index)
    again = list(text_batches(sequences, labels, batch_size=4, seed=0, bucket_factor=1))
    assert [b.index.tolist() for b in batches] == [b.index.tolist() for b in again]
    # Under torchrun each rank keeps every world_size-th batch, as many as every other rank.
    shares = [LengthBuckets([len(s) for s in sequences], 2, shuffle=True, bucket_factor=1,
                            generator=torch.Generator().manual_seed(0), rank=r, world_size=2).batches
              for r in (0, 1)]
    whole = LengthBuckets([len(s) for s in sequences], 2, shuffle=True, bucket_factor=1,
                          generator=torch.Generator().manual_seed(0)).batches
    assert shares == [whole[0:4:2], whole[1:4:2]]
    assert truncate(list(range(10)), 4) == [0, 1, 2, 3]


def test_under_torchrun_each_rank_gets_its_share_and_the_loop_does_not_deal_again(monkeypatch):
    from torch.utils.data.distributed import DistributedSampler

    from lstmkit.data.batching import tensor_batches
    from lstmkit.training import distributed

    rows = torch.arange(10).float()[:, None]  # (N, 1)
    seen = {}
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        loader = tensor_batches((rows,), 3, seed=0, epoch=1, shard=True)
        assert isinstance(loader.sampler, DistributedSampler) and distributed.is_sharded(loader)
        seen[rank] = [int(v) for (batch,) in loader for v in batch[:, 0]]
        text = text_batches([[1] * n for n in range(1, 8)], None, 2, seed=0, shard=True)
        assert distributed.is_sharded(text) and len(text) == 2  # 4 batches, every other one
    assert len(seen[0]) == len(seen[1]) == 5 and sorted(seen[0] + seen[1]) == list(range(10))
    assert not distributed.is_sharded(tensor_batches((rows,), 3, seed=0))  # evaluation: all rows


def test_acl_imdb_as_unpacked_root_parts_and_unsup(tmp_path, capsys):
    """--train aclImdb / --test aclImdb read its train/ and test/; train/unsup/ is unlabelled
    text, never a third class, and can be read for pretraining."""
    root = tmp_path / "aclImdb"
    files = {"train/pos/0_9.txt": "A fine film.<br /><br />Loved it", "train/neg/1_2.txt": "Dull.",
             "train/unsup/2_0.txt": "No label here", "test/pos/3_8.txt": "Great",
             "test/neg/4_1.txt": "Awful"}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    train = read_examples(root).examples
    assert sorted((e.label, e.text) for e in train) == [("neg", "Dull."),
                                                        ("pos", "A fine film. Loved it")]
    err = capsys.readouterr().err
    assert "reading its train/ folder" in err and "unlabelled texts, not a class" in err
    test = read_examples(root, part="test").examples
    assert sorted(e.label for e in test) == ["neg", "pos"] and LabelSet.build(
        e.label for e in train).names == ["neg", "pos"]
    assert read_unlabelled(root / "train" / "unsup") == ["No label here"]
