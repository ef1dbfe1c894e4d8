"""Classification stage: fine-tune melanoma classifiers on ISIC image labels (no masks)."""
