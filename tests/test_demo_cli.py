"""`lstmkit demo` and `lstmkit experiment` through the real CLI entry point (tiny --quick runs)."""
import json

import pytest

from lstmkit import cli
from lstmkit.experiments import EXPERIMENTS


def test_quick_demo_writes_metrics_figures_and_a_self_contained_report(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["demo", "--quick", "--no-progress", "--threads", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "RNN acc" in printed and "LSTM MSE" in printed and "report.html" in printed
    assert "Summary:" in printed and "Adding at T=20" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["seed"] == 0 and metrics["quick"] is True
    assert list(metrics["experiments"]) == list(EXPERIMENTS)
    cliff_metrics = metrics["experiments"]["cliff"]
    assert cliff_metrics["chance"] == pytest.approx(1 / 6)
    assert set(cliff_metrics["accuracy"]["lstm"]) == {"2", "8"}
    assert all(0 <= a <= 1 for a in cliff_metrics["accuracy"]["rnn"].values())
    assert metrics["experiments"]["adding"]["baseline_mse"] == pytest.approx(1 / 6)
    gate_metrics = metrics["experiments"]["gates"]
    assert 0 < gate_metrics["forget_gate_over_distractors"] < 1 and len(gate_metrics["units"]) == 4
    for name in ("cliff_accuracy.png", "gradients.png", "gates.png", "adding.png", "copy.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    report = (out / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 5
    assert '<span title="forget gate f' in report and 'src="http' not in report
    assert not list(out.glob("*.tmp*"))


def test_ctrl_c_leaves_the_finished_experiments_readable(tmp_path, monkeypatch, capsys):
    def interrupted(context, out_dir):
        raise KeyboardInterrupt

    monkeypatch.setitem(EXPERIMENTS, "copy", interrupted)
    status = cli.main(["experiment", "adding", "copy", "--quick", "--no-progress", "--threads", "1",
                       "--out", str(tmp_path)])
    assert status == 130
    assert "interrupted" in capsys.readouterr().err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "partial: 1 of 2 done"
    assert list(metrics["experiments"]) == ["adding"]
    report = (tmp_path / "report.html").read_text()
    assert "Adding problem" in report and "Not run (yet)" in report
    assert (tmp_path / "adding.png").exists()


@pytest.mark.parametrize("argv, expected", [
    (["experiment", "nope"], "unknown experiment 'nope'; choose from: cliff, gradients"),
    (["experiment", "cliff", "--distances", "5,-3"], "--distances must be >= 0"),
    (["experiment", "cliff", "--distances", "5,x"], "comma-separated whole numbers"),
    (["demo", "--species", "0"], "--species must be >= 1"),
    (["experiment", "gates", "--names", "1"], "--names must be between 2 and 12"),
    (["experiment", "adding", "--lengths", "0,50"], "--lengths must be >= 2"),
    (["experiment", "cliff", "--lengths", "10"], "--lengths applies only to the adding and copy"),
    (["demo", "--seed", "-1"], "--seed must be >= 0"),
])
def test_bad_input_is_one_line_and_exit_status_2(argv, expected, capsys, tmp_path):
    assert cli.main(argv + ["--out", str(tmp_path / "never")]) == 2
    error = capsys.readouterr().err
    assert expected in error and error.count("\n") == 1
    assert not (tmp_path / "never").exists()  # checked before anything was written


def test_unwritable_output_folder_is_exit_status_2(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert cli.main(["demo", "--quick", "--out", str(blocker / "run")]) == 2
    error = capsys.readouterr().err
    assert "cannot write to output folder" in error and error.count("\n") == 1
