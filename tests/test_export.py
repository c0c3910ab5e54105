"""Readers without a kernel: a committed notebook shows every panel's final figure.

GitHub, nbviewer and ``jupyter nbconvert --to html`` have no widget state for
the panels (the notebooks are saved without it), so each panel's output also
holds a picture of its final figure; this checks the HTML export has one per
panel and no bare widget repr, and that each notebook stays under 1 MB.
"""
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PANEL = re.compile(r"\b(ExperimentPanel|LockingPanel)\(")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_html_export_shows_a_figure_for_every_panel(path):
    from nbconvert import HTMLExporter

    nb = json.loads(path.read_text())
    panels = [c for c in nb["cells"] if c["cell_type"] == "code" and PANEL.search("".join(c["source"]))]
    body, _ = HTMLExporter().from_filename(str(path))
    for cell in panels:
        pictures = [o for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        assert pictures, f"a panel cell has no picture of its figure:\n{''.join(cell['source'])[:300]}"
    assert body.count("data:image/png;base64") >= len(panels)
    assert "VBox(children" not in body
    assert path.stat().st_size < 1_000_000, f"{path.name} is {path.stat().st_size} bytes"
