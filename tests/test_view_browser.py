"""lstmkit view in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven by
selenium with the system's driver (it never downloads a browser). Skipped, with the reason, where
either is missing.

Pages come from small models trained here in a few steps. Each page must load without a console
error; switching unit, tensor and layer must change the colours read back from the DOM; hovering a
step must show the values lstmkit.trace gives (1e-6) and the model's own running prediction. The
screenshots go to the test's folder, or to $LSTMKIT_VIEW_SCREENSHOTS when set (for the docs).
"""
import os
from pathlib import Path

import pytest
import torch

from lstmkit.cli import main
from lstmkit.view import load, probe
from lstmkit.view.browser import console_errors, headless_chromium, hover, open_page, why_not
from small_models import direct_trace, quoted_text, series_file, trained_runs


@pytest.fixture(scope="module")
def browser():
    reason = why_not()
    if reason:
        pytest.skip(reason)
    with headless_chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return trained_runs(tmp_path_factory)


def colours(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#lv-text span[data-t]'), s => s.style.backgroundColor)")


def current(driver) -> tuple[int, int, str]:
    return tuple(driver.execute_script("const v = window.lstmkitView.view; return [v.trace, v.unit, v.tensor]"))


def screenshot(driver, tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get("LSTMKIT_VIEW_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    assert driver.save_screenshot(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    return path


def test_language_model_page_colours_hover_and_probe(browser, runs, tmp_path):
    from selenium.webdriver.support.ui import Select

    text = quoted_text(14, seed=7)
    (tmp_path / "in.txt").write_text(text)
    page = tmp_path / "lm.html"
    assert main(["view", "--model", str(runs["lm"]), "--file", str(tmp_path / "in.txt"), "--out", str(page),
                 "--probe", '"[^"]*"']) == 0
    open_page(browser, page)
    assert console_errors(browser) == []

    task = load(runs["lm"])
    ids = torch.tensor(task.vocab.encode(list(text))).view(1, -1)
    expected = direct_trace(task.model, ids)
    shown, traces, _ = task.view(text)
    labels = [f"{t.module}|{t.layer}|{t.direction}" for t in traces]
    with torch.no_grad():
        probs = torch.softmax(task.model(ids)[0][0].double(), -1)  # (T, V)

    def check_hover(steps):
        trace, unit, _ = current(browser)
        key = tuple(labels[trace].split("|"))
        recorded = expected[(key[0], int(key[1]), key[2])]
        for t in steps:
            shown_values = hover(browser, t)
            for name in ("i", "f", "g", "o", "c", "h"):
                assert abs(float(shown_values[name]) - float(recorded[name][t, unit])) <= 1e-6, (name, t)
            for label, value in shown_values.items():
                if label.startswith("p:"):
                    index = task.vocab.index[label[2:]]
                    assert abs(float(value) - float(probs[t, index])) <= 1e-4

    check_hover([0, 5, len(text) - 1])
    before = colours(browser)
    Select(browser.find_element("id", "lv-tensor")).select_by_value("f")
    after_tensor = colours(browser)
    assert after_tensor != before and current(browser)[2] == "f"
    rows = browser.find_elements("css selector", "#lv-units tbody tr")
    other = next(row for row in rows if int(row.get_attribute("data-unit")) != current(browser)[1])
    chosen = int(other.get_attribute("data-unit"))
    other.click()  # the list is drawn anew, with this row selected
    assert colours(browser) != after_tensor and current(browser)[1] == chosen
    Select(browser.find_element("id", "lv-layer")).select_by_value(str(1 - current(browser)[0]))
    check_hover([3, 40])
    screenshot(browser, tmp_path, "view-lm.png")

    pattern = browser.find_element("id", "lv-probe-pattern")
    pattern.clear()
    pattern.send_keys(r"[^\n]*\n")
    browser.find_element("css selector", "#lv-probe button").click()
    top = browser.find_element("css selector", "#lv-probe-hits li").text
    best = probe(traces, shown.tokens, shown.joiner, r"[^\n]*\n")[0]  # every unit is in this small page
    assert top.startswith(f"{best.label}, unit {best.unit}: {best.feature}")
    assert float(top.rsplit("r = ", 1)[1]) == pytest.approx(best.correlation, abs=1e-3)
    assert console_errors(browser) == []


def test_sentiment_page_shows_the_prediction_of_the_text_so_far(browser, runs, tmp_path):
    text = "this book was great and i love it but the item was broken"
    page = tmp_path / "sentiment.html"
    assert main(["view", "--model", str(runs["sentiment"]), "--text", text, "--out", str(page)]) == 0
    open_page(browser, page)
    task = load(runs["sentiment"])
    ids = torch.tensor([task.vocab.encode(text.split())])
    for t in (2, ids.shape[1] - 1):
        with torch.no_grad():
            expected = torch.softmax(task.model(ids[:, :t + 1], torch.tensor([t + 1])).double(), -1)[0]
        values = hover(browser, t)
        assert [float(values["p:1"]), float(values["p:2"])] == pytest.approx(expected.tolist(), abs=1e-4)
    before = colours(browser)
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("id", "lv-layer")).select_by_index(1)  # the reverse direction
    assert colours(browser) != before
    assert console_errors(browser) == []
    screenshot(browser, tmp_path, "view-sentiment.png")


def test_forecast_page_plots_the_series_and_the_forecast(browser, runs, tmp_path):
    page = tmp_path / "forecast.html"
    assert main(["view", "--model", str(runs["forecast"]), "--file", str(series_file(runs["root"])),
                 "--out", str(page)]) == 0
    open_page(browser, page)
    _, _, prediction = load(runs["forecast"]).view(str(series_file(runs["root"])))
    values = hover(browser, 40)
    assert [float(values[f"p:{k}"]) for k in (1, 2, 3)] == pytest.approx(prediction.values[40].tolist(), rel=1e-5)
    assert browser.execute_script("return !document.getElementById('lv-plot').hidden")
    assert browser.execute_script("return document.getElementById('lv-probe').hidden")  # no text to probe
    assert console_errors(browser) == []
    screenshot(browser, tmp_path, "view-forecast.png")


@pytest.mark.slow
def test_a_page_of_20000_characters_is_light_and_quick(browser, runs, tmp_path):
    text = (quoted_text(2000, seed=11) * 2)[:20_000]
    (tmp_path / "long.txt").write_text(text)
    page = tmp_path / "long.html"
    assert main(["view", "--model", str(runs["lm"]), "--file", str(tmp_path / "long.txt"), "--out", str(page)]) == 0
    assert page.stat().st_size < 5_000_000
    ready_ms = open_page(browser, page)
    assert ready_ms < 2000, f"the 20,000-character page took {ready_ms:.0f} ms to be ready"
    assert len(colours(browser)) == 20_000
    assert console_errors(browser) == []


def test_the_demo_cliff_page_loads_and_hovers(browser, tmp_path):
    from test_view import cliff_like_page

    model, ids, _ = cliff_like_page(tmp_path)
    open_page(browser, tmp_path / "cliff_view.html")
    with torch.no_grad():
        expected = torch.softmax(model(ids)[0, 5].double(), -1)
    values = hover(browser, 5)
    assert [float(values[f"p:{s}"]) for s in ("dog", "cat", "parrot")] == pytest.approx(expected.tolist(), abs=1e-4)
    assert console_errors(browser) == []


def test_a_trace_record_renders_inline_in_a_sandboxed_frame(browser, tmp_path):
    import lstmkit

    lstm = lstmkit.LSTM(3, 4, batch_first=True)
    with lstmkit.trace(lstm) as recording:
        lstm(torch.randn(1, 9, 3))
    record = recording.get(layer=0)
    page = tmp_path / "notebook.html"
    page.write_text(f"<!doctype html><html><body><p>cell output:</p>{record._repr_html_()}</body></html>")
    open_page(browser, page, frame=True)
    values = hover(browser, 4)
    assert abs(float(values["c"]) - float(record.c[0, 4, current(browser)[1]])) <= 1e-6
    assert console_errors(browser) == []
    browser.switch_to.default_content()
