"""The demo notebook runs top to bottom (nbclient, a real kernel) and is committed without outputs."""

from __future__ import annotations

import nbformat
import pytest

from .conftest import REPO

NOTEBOOK = REPO / "notebooks" / "Zero_Shot_Segmentation_Demo.ipynb"


def test_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_notebook_executes_top_to_bottom():
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()  # raises CellExecutionError on any failing cell
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 7  # every step drew its picture
    assert any("delivered from" in o.get("text", "") for o in outputs)
