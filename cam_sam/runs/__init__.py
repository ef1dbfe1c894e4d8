"""Dataset runs: the settings of a script turned into a pipeline (:mod:`.build`) and images
(:mod:`.inputs`); every image of a dataset segmented into a resumable run folder and scored: the
run planned, its workers started and its summary written by :mod:`.dataset`, the per-image work in
each process that segments by :mod:`.work`, the figures by :mod:`.overlays`."""
