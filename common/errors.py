"""The project's own exceptions: the errors a user can act on.

Everything the library raises for a user's mistake or a bad input derives from :class:`CamSamError`
and carries a one-line message that names the file, key or setting at fault. The scripts' shared
entry (:func:`common.cli.run_main`) prints such an error as one line and exits with status 2; any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class CamSamError(Exception):
    """Base of every error a user can act on; its message names the file, key or setting."""


class SettingsError(CamSamError, ValueError):
    """A CONFIG key, value, preset or combination of settings that cannot run."""


class DataError(CamSamError, ValueError):
    """An image, mask, folder or dataset layout that cannot be read as the project expects."""


class CheckpointError(CamSamError, RuntimeError):
    """A checkpoint or its sidecar that is missing, unreadable, unsafe or does not fit."""


class RunError(CamSamError, RuntimeError):
    """A run that cannot go on: a worker process stopped, a run folder holds another config."""
