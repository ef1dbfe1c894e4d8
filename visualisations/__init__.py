"""Drawing, below the pipeline: the per-image overlays the runs, the page and the notebook share,
classification and synthetic-pair figures, bootstrap intervals; and figure and table scripts that
read earlier runs' files (JSON, PNG, NPY) and never recompute. It imports only ``common`` and
``data``; figures that need the pipeline live with it (``cam_sam.studies.trust_figures``,
``explainers.cam_quality``)."""
