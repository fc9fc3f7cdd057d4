"""reports — single-file, offline HTML pages of harness runs (no CDN, no external resources).

One module per report kind, each a pure view builder, a renderer and an atomic writer:
`conformance` (a `RunResult.to_dict()`), `load` (a load-run document), `compare` (two load runs),
`index` (every result in a run's folder, linked), `sweep` (a saturation sweep's steps and findings).
`_page` is what they share: the Jinja templates, the Content-Security-Policy, the vendored uPlot,
the number formats and `write_atomic`, which other packages use for their own result files.
`python -m reports` renders saved results.
"""

from ._page import write_atomic
from .compare import compare_runs, render_compare, write_compare
from .conformance import render_conformance, write_conformance
from .index import index_directory
from .load import render_load, write_load
from .sweep import render_sweep, write_sweep

__all__ = [
    "compare_runs",
    "index_directory",
    "render_compare",
    "render_conformance",
    "render_load",
    "render_sweep",
    "write_atomic",
    "write_compare",
    "write_conformance",
    "write_load",
    "write_sweep",
]
