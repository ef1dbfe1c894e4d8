"""The project's version: the one place it is spelled. ``cam_sam.__version__`` re-exports it and
every run records it in its ``config.json`` (``"version"``); CHANGELOG.md says what each one holds."""

__version__ = "0.6.0"
