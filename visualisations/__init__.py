"""Figures. Scripts here read results (JSON, PNG, NPY) of earlier runs; they never recompute."""
