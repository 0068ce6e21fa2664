"""The eval package depends on the collection, never the reverse (no import cycle), and
loads matplotlib only when a figure is drawn."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import lookalike.collection
assert not [m for m in sys.modules if m.startswith("lookalike.eval")], "collection -> eval"
import lookalike.eval
assert "matplotlib" not in sys.modules, "matplotlib imported eagerly"
"""


def test_eval_depends_on_collection_one_way_and_plots_lazily() -> None:
    subprocess.run([sys.executable, "-c", CHECK], check=True)
