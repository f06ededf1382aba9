"""lstmkit view without a browser: scores, probe, page data, the task adapter, the command, _repr_html_.

The page itself is tested in headless Chromium in test_view_browser.py.
"""
import base64
import gzip
import json
import re

import numpy as np
import pytest
import torch

import lstmkit
from lstmkit.cli import main
from lstmkit.view import LayerTrace, ShownInput, build_page, load, page_data, probe, render
from lstmkit.view import models as view_models
from lstmkit.view.page import derived_tensors, pack_float32
from lstmkit.view.probe import regex_features, step_offsets
from lstmkit.view.scores import correlations, memory_steps, ranked, selectivity
from small_models import assert_close, direct_trace, quoted_text, series_file, trained_runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return trained_runs(tmp_path_factory)


def unpack_float32(packed: str) -> np.ndarray:
    """What the page's script does to a packed array, in Python."""
    grouped = np.frombuffer(gzip.decompress(base64.b64decode(packed)), dtype=np.uint8)
    return np.ascontiguousarray(grouped.reshape(4, -1).T).view("<f4").ravel()


# ---- scores and probe ----------------------------------------------------------------------------

def test_correlations_match_numpy_and_constant_units_are_nan():
    rng = np.random.default_rng(0)
    state = rng.normal(size=(50, 4)).astype(np.float32)
    state[:, 3] = 1.0
    feature = rng.normal(size=50)
    got = correlations(state, feature)
    for unit in range(3):
        assert got[unit] == pytest.approx(np.corrcoef(state[:, unit], feature)[0, 1], abs=1e-12)
    assert np.isnan(got[3])
    mask = np.arange(50) < 20
    assert correlations(state, feature, mask)[0] == pytest.approx(np.corrcoef(state[:20, 0], feature[:20])[0, 1])


def test_memory_and_selectivity_scores():
    keep = np.stack([np.full(40, 0.9), np.full(40, 0.5), np.ones(40)], axis=1)  # (T, 3)
    assert memory_steps(keep) == pytest.approx([10.0, 2.0, 1e4])
    gate = np.zeros((40, 2))
    gate[7, 0] = 1.0        # opens at one step only
    gate[:, 1] = 0.5        # open alike everywhere
    assert selectivity(gate) == pytest.approx([1.0, 2 / 40])
    assert ranked(np.array([0.2, np.nan, 0.9, 0.5])) == [2, 3, 0, 1]


def test_regex_features_inside_position_remaining():
    tokens = list('ab "cd" e\nfg\n')
    features = regex_features(tokens, "", r'"[^"]*"')
    inside, every = features["inside"]
    assert inside.tolist() == [0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0] and every.all()
    line_position, within = regex_features(tokens, "", r"[^\n]*\n")["position"]
    assert within.all() and line_position.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]
    remaining, _ = regex_features(tokens, "", r"[^\n]*\n")["remaining"]
    assert remaining.tolist() == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 2, 1, 0]
    words = ["he", "said", '"no', 'way"', "ok"]
    assert step_offsets(words, " ").tolist() == [0, 3, 8, 12, 17]
    assert regex_features(words, " ", r'"[^"]*"')["inside"][0].tolist() == [0, 0, 1, 1, 0]
    with pytest.raises(ValueError, match="not a valid regular expression"):
        regex_features(tokens, "", "(")
    with pytest.raises(ValueError, match="matches no step"):
        regex_features(tokens, "", "xyz")


def test_probe_finds_a_planted_line_position_unit():
    text = quoted_text(30)
    tokens = list(text)
    position, _ = regex_features(tokens, "", r"[^\n]*\n")["position"]
    rng = np.random.default_rng(1)
    cells = rng.normal(size=(len(tokens), 6)).astype(np.float32)
    cells[:, 4] = -0.1 * position  # unit 4 counts down along each line
    traces = [LayerTrace("", 0, "forward", {"c": rng.normal(size=(len(tokens), 6)).astype(np.float32)}),
              LayerTrace("", 1, "forward", {"c": cells})]
    best = probe(traces, tokens, "", r"[^\n]*\n")[0]
    assert (best.trace, best.unit, best.feature) == (1, 4, "position")
    assert best.correlation == pytest.approx(-1.0)


# ---- the page's data -----------------------------------------------------------------------------

def test_packed_arrays_round_trip_exactly():
    values = np.random.default_rng(2).normal(size=1000).astype(np.float32)
    values[:3] = [0.0, -0.0, 1e-38]
    assert np.array_equal(unpack_float32(pack_float32(values)).view(np.uint32), values.view(np.uint32))


def small_traces(steps=30, units=8, seed=0):
    rng = np.random.default_rng(seed)
    def tensors():
        gates = {name: rng.uniform(size=(steps, units)).astype(np.float32) for name in "ifo"}
        return {"c": rng.normal(size=(steps, units)).astype(np.float32), **gates,
                "g": rng.uniform(-1, 1, size=(steps, units)).astype(np.float32)}
    return [LayerTrace("lstm", 0, "forward", tensors()), LayerTrace("lstm", 0, "reverse", tensors())]


def test_page_keeps_under_its_budget_with_probe_hits_first():
    shown = ShownInput(list(quoted_text(10)))
    traces = small_traces(len(shown.tokens), units=40)
    hits = probe(traces, shown.tokens, "", r"[^\n]*\n")
    full = page_data(shown, traces, None, title="t")
    assert full["budget"]["shown"] == full["budget"]["total"] == 80
    small = page_data(shown, traces, None, title="t", probe_hits=hits, max_bytes=len(json.dumps(full)) // 3)
    assert 0 < small["budget"]["shown"] < 80
    assert len(render(small).encode()) <= len(json.dumps(full)) // 3
    assert str(hits[0].unit) in small["traces"][hits[0].trace]["data"]
    for trace, data in zip(traces, small["traces"]):
        for unit, packed in data["data"].items():
            stored = unpack_float32(packed).reshape(len(trace.tensors), -1)
            assert np.array_equal(stored, np.stack([v[:, int(unit)] for v in trace.tensors.values()]))


@pytest.mark.parametrize("variant, derived", [({}, ["h"]), ({"layer_norm": True}, []), ({"proj_size": 2}, [])])
def test_h_is_left_to_the_page_only_where_it_is_o_tanh_c(variant, derived):
    lstm = lstmkit.LSTM(3, 4, **variant)
    _, traces = lstmkit.view.traced(lstm, lambda: lstm(torch.randn(20, 1, 3) * 3))
    assert derived_tensors(traces[0]) == derived
    data = page_data(ShownInput(list("x" * 20)), traces, None, title="t")
    assert data["traces"][0]["stored"] == [n for n in data["traces"][0]["tensors"] if n not in derived]


def test_page_is_self_contained_and_text_cannot_break_out():
    tokens = list('</script><script>alert(1)</script> {{DATA}} /*{{JS}}*/ ')
    page = build_page(ShownInput(tokens), small_traces(len(tokens), units=2), None, title="<b>x</b>")
    assert page.count("</script>") == 2  # the data block's and the script's own
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing fetched
    data = json.loads(re.search(r'<script type="application/json" id="lv-data">(.*?)</script>', page, re.S).group(1))
    assert "".join(data["tokens"]) == "".join(tokens)


# ---- the task adapter ----------------------------------------------------------------------------

def test_language_model_view_matches_trace_and_model(runs, monkeypatch):
    monkeypatch.setattr(view_models, "CHUNK", 37)  # several forward calls, the state carried
    task = load(runs["lm"])
    text = quoted_text(6, seed=5)
    shown, traces, prediction = task.view(text)
    assert shown.tokens == list(text) and shown.joiner == ""
    ids = torch.tensor(task.vocab.encode(list(text))).view(1, -1)  # (1, T)
    expected = direct_trace(task.model, ids)
    assert len(traces) == 2
    for trace in traces:
        for name, values in trace.tensors.items():
            assert_close(values, expected[(trace.module, trace.layer, trace.direction)][name])
    with torch.no_grad():
        probs = torch.softmax(task.model(ids)[0][0].double(), -1)  # (T, V)
    top = probs.topk(5, -1)
    assert np.array_equal(prediction.ids, top.indices.numpy())
    assert_close(prediction.values, top.values.numpy())
    entropy = -(probs * probs.log()).sum(-1)
    assert_close(prediction.signal, entropy.numpy())


def test_sentiment_view_predicts_each_prefix_as_its_own_text(runs):
    task = load(runs["sentiment"])
    shown, traces, prediction = task.view("This item was GREAT, zyzzyva really")
    assert shown.tokens == ["this", "item", "was", "great", ",", "zyzzyva", "really"]
    assert shown.unknown == [False, False, False, False, True, True, False]  # "," and the made-up word
    assert {(t.layer, t.direction) for t in traces} == {(0, "forward"), (0, "reverse")}
    ids = torch.tensor([task.vocab.encode(shown.tokens)])
    for t in (0, 3, 6):
        with torch.no_grad():
            expected = torch.softmax(task.model(ids[:, :t + 1], torch.tensor([t + 1])).double(), -1)[0]
        assert_close(prediction.values[t], expected.numpy())
    assert prediction.labels == ["1", "2"]


def test_forecast_view_gives_the_models_forecast_of_each_prefix(runs):
    import dataclasses

    from lstmkit.tasks.forecast.predict import forecast_after_end

    task = load(runs["forecast"])
    path = series_file(runs["root"])
    shown, traces, prediction = task.view(str(path))
    assert len(shown.tokens) == 96 and shown.series[0] == pytest.approx(100.0)
    assert np.isnan(prediction.values[10]).all() and np.isfinite(prediction.values[11:]).all()  # season 12
    raw = np.array([[float(v) for v in line.split(",")[1:]] for line in path.read_text().splitlines()[1:]])
    for t in (11, 40, 95):
        expected = forecast_after_end(task.model, dataclasses.replace(task.config, window=t + 1),
                                      task.scaler, raw[:t + 1], str(path))
        assert_close(prediction.values[t], expected, 1e-3)  # float32 forecasts in the series' units (~100)


# ---- the command ---------------------------------------------------------------------------------

def test_view_command_writes_a_page_and_prints_probe_hits(runs, tmp_path, capsys):
    text = tmp_path / "input.txt"
    text.write_text(quoted_text(8, seed=3))
    out = tmp_path / "page.html"
    assert main(["view", "--model", str(runs["lm"]), "--file", str(text), "--out", str(out),
                 "--probe", r"[^\n]*\n"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"unit +\d+ +(inside|position|remaining) +r = [+-]0\.\d{3}", printed)
    assert out.stat().st_size < 5e6 and "all 24 units" in printed
    assert not (tmp_path / "page.html.tmp").exists()


@pytest.mark.parametrize("model, extra, message", [
    ("lm", ["--text", "   "], "--text is empty"),
    ("lm", ["--file", "missing.txt"], "file not found"),
    ("lm", ["--text", "the cat \u00e9"], "never saw"),
    ("lm", ["--text", "the cat", "--probe", "("], "not a valid regular expression"),
    ("lm", ["--text", "the cat", "--probe", "xyz"], "matches no step"),
    ("lm", ["--text", "the cat", "--max-mb", "0"], "--max-mb must be > 0"),
    ("forecast", ["--text", "1 2 3"], "give --file with a CSV"),
    ("forecast", ["--file", "series.csv", "--probe", "x"], "forecaster reads a series"),
    ("nothing", ["--text", "a"], "no checkpoint here"),
])
def test_view_bad_input_is_one_line_and_exit_2(runs, tmp_path, capsys, monkeypatch, model, extra, message):
    monkeypatch.chdir(runs["root"])
    directory = runs.get(model, tmp_path / model)
    status = main(["view", "--model", str(directory), *extra, "--out", str(tmp_path / "p.html")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and message in err[-1] and err[-1].startswith("lstmkit view: error:")
    assert not (tmp_path / "p.html").exists()


def test_view_refuses_a_model_without_text_or_series_input(tmp_path, capsys):
    from lstmkit.training.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "digits", task="seqmnist", model_config={}, state_dict={"w": torch.zeros(1)})
    assert main(["view", "--model", str(tmp_path / "digits"), "--text", "x"]) == 2
    assert "shows models that read text or a series" in capsys.readouterr().err


# ---- Jupyter -------------------------------------------------------------------------------------

def test_trace_record_renders_inline_as_a_sandboxed_page():
    lstm = lstmkit.LSTM(3, 5, batch_first=True)
    with lstmkit.trace(lstm) as recording:
        lstm(torch.randn(2, 7, 3))
    inline = recording.get(layer=0)._repr_html_()
    assert inline.startswith("<iframe srcdoc=") and 'sandbox="allow-scripts"' in inline
    view = lstmkit.view.show(recording, tokens=list("abcdefg"), row=1)
    data = json.loads(re.search(r'id="lv-data">(.*?)</script>', view.html(), re.S).group(1))
    assert data["tokens"] == list("abcdefg") and data["budget"]["shown"] == 5
    with pytest.raises(ValueError, match="3 tokens for a record of 7 steps"):
        lstmkit.view.show(recording, tokens=list("abc"))


# ---- the demo's report ---------------------------------------------------------------------------

def cliff_like_page(folder):
    """The demo's Cliff model kind (embedding -> LSTM -> species at every step), untrained, as a page."""
    from lstmkit.experiments.common import RecurrentModel
    from lstmkit.experiments.report import write_viewer_page

    torch.manual_seed(0)
    model = RecurrentModel("lstm", 8, 6, 3, vocab_size=12)
    words = "i have a dog named cliff . however , cliff , my pet".split()
    ids = torch.randint(1, 12, (1, len(words)))
    link = write_viewer_page(folder, "cliff_view.html", model, ids, words, ["dog", "cat", "parrot"], "Cliff")
    return model, ids, link


def test_demo_report_links_a_viewer_page_of_the_cliff_model(tmp_path):
    model, ids, link = cliff_like_page(tmp_path)
    assert '<a href="cliff_view.html">' in link
    page = (tmp_path / "cliff_view.html").read_text()
    data = json.loads(re.search(r'id="lv-data">(.*?)</script>', page, re.S).group(1))
    assert data["tokens"][:3] == ["i", "have", "a"] and data["prediction"]["labels"] == ["dog", "cat", "parrot"]
    with torch.no_grad():
        final = torch.softmax(model(ids)[0, -1].double(), -1)
    stored = unpack_float32(data["prediction"]["values"]).reshape(-1, 3)
    assert_close(stored[-1], final.numpy())
