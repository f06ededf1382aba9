"""See inside a recurrent model: one self-contained HTML page of its gates on an input.

    lstmkit view --model runs/lm --file text.txt --probe '"[^"]*"'      # the command line
    lstmkit.view.show(record, tokens=list("hello"))                      # a trace record, in Jupyter

The pieces: ``content`` (what a page shows, taken from ``lstmkit.trace`` records), ``scores``
(unit rankings), ``probe`` (units that follow a regular expression's matches), ``predictions``
(running predictions), ``page`` (the HTML, script and data inline), ``models`` (the one adapter to
the task models), ``record`` (a single trace record as a page, for ``_repr_html_``).
"""
from lstmkit.view.content import LayerTrace, RunningPrediction, ShownInput, layer_traces, traced
from lstmkit.view.models import classes_at_every_step, load
from lstmkit.view.page import build_page, page_data, render
from lstmkit.view.probe import ProbeHit, probe
from lstmkit.view.record import RecordView, show

__all__ = ["LayerTrace", "ProbeHit", "RecordView", "RunningPrediction", "ShownInput", "build_page", "classes_at_every_step", "layer_traces",
           "load", "page_data", "probe", "render", "show", "traced"]
