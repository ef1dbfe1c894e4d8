"""Dataset runs: the settings of a script turned into a pipeline and data (:mod:`.build`), every
image of a dataset segmented into a resumable run folder and scored (:mod:`.dataset`)."""
