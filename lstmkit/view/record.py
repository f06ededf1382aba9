"""A trace record (or a whole recording) as a viewer page: what ``GateRecord._repr_html_`` shows.

    with lstmkit.trace(model) as t:
        model(x)
    t.get(layer=0)                                # in Jupyter: renders inline
    lstmkit.view.show(t, tokens=list(text))       # every layer, the steps labelled by their tokens

Without tokens the steps are labelled by their index. A record holds a batch; the page shows one
sequence of it (``row``, the first by default). Inline, the page sits in a sandboxed iframe, so its
script and styles cannot touch the notebook's.
"""
from __future__ import annotations

import html
from pathlib import Path

from lstmkit.view.content import LayerTrace, ShownInput, layer_traces, sequence_rows, unit_tensors
from lstmkit.view.page import build_page

INLINE_HEIGHT = 640  # pixels: the inline frame shows the controls, some text and the hover details


class RecordView:
    """A page of one trace record or of every record of a recording."""

    def __init__(self, source, tokens: list[str] | None = None, row: int = 0, joiner: str | None = None,
                 title: str | None = None) -> None:
        if hasattr(source, "records"):  # a whole recording (lstmkit.trace's Trace)
            self.traces = layer_traces(source, row)
        else:
            self.traces = [LayerTrace(source.module_name, source.layer, source.direction,
                                      unit_tensors(sequence_rows(source, row)))]
        if not self.traces:
            raise ValueError("the recording is empty: run the model inside the trace block")
        steps = self.traces[0].steps
        if tokens is None:
            tokens, joiner = [str(t) for t in range(steps)], " " if joiner is None else joiner
        elif len(tokens) != steps:
            raise ValueError(f"{len(tokens)} tokens for a record of {steps} steps")
        self.shown = ShownInput(list(tokens), joiner="" if joiner is None else joiner)
        self.title = title or f"lstmkit trace, sequence {row}"

    def html(self) -> str:
        """The page as a standalone HTML document."""
        return build_page(self.shown, self.traces, None, title=self.title,
                          subtitle=f"{len(self.shown.tokens)} steps")

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.html(), encoding="utf-8")
        return path

    def _repr_html_(self) -> str:
        return (f'<iframe srcdoc="{html.escape(self.html(), quote=True)}" sandbox="allow-scripts" '
                f'style="width: 100%; height: {INLINE_HEIGHT}px; border: 1px solid #ddd"></iframe>')


def show(source, tokens: list[str] | None = None, row: int = 0, joiner: str | None = None) -> RecordView:
    """A viewable page of a trace record or recording; renders inline in Jupyter."""
    return RecordView(source, tokens, row, joiner)


def record_html(record) -> str:
    """``GateRecord._repr_html_``: the record's first sequence as an inline page."""
    return RecordView(record)._repr_html_()
