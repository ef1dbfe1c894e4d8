"""Small helpers shared by every script: CONFIG overrides, run folders, atomic writes."""
