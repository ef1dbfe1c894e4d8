"""The defaults every script shares, defined once: where the data is read from and where runs are
written. Relative paths are read from the folder a script runs in (the repository root in every
README command); each script's ``CONFIG`` names them, and ``--set data_root=...`` or
``--set results_root=...`` overrides them for one run."""

from __future__ import annotations

DATA_ROOT = "../shared/data/ISIC2017"  # ISIC 2017 in its official unzip layout (or train/ val/ test/)
RESULTS_ROOT = "results"  # each run writes a new folder under it unless out_dir is set
