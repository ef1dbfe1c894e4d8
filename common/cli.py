"""Running a script's ``main`` so that a user's mistake reads as one line, not a traceback.

A missing data folder, an unknown split, a checkpoint that is missing or of another architecture:
the library raises one of the project's errors (:class:`common.errors.CamSamError` and its kinds),
and the script prints ``error: <message naming the file or key>`` and exits with status 2. Any other
exception (a ``KeyError``, a ``ValueError``) is a bug and keeps its traceback; so does every error
with ``CAM_SAM_TRACEBACK=1``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from common.errors import CamSamError

USER_ERRORS: tuple[type[BaseException], ...] = (CamSamError,)


def run_main(main: Callable[[Sequence[str]], Any], argv: Sequence[str] | None = None) -> None:
    """Call ``main(argv)``; a user error (:data:`USER_ERRORS`) ends the process with one line on
    stderr and exit status 2; any other exception propagates with its traceback."""
    try:
        main(list(sys.argv[1:] if argv is None else argv))
    except USER_ERRORS as exc:
        if os.environ.get("CAM_SAM_TRACEBACK"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
