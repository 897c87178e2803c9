"""``python -m helpers.train``: the training command line, and the one name old checkpoints need.

The implementation lives in :mod:`helpers.training`; import from there. ``_MixingFactory`` stays
importable here because checkpoints written before the split into :mod:`helpers.training` pickled it
under this module's path, and they must still resume.
"""

from __future__ import annotations

import sys

from helpers.training.cli import main
from helpers.training.sampling import _MixingFactory

__all__ = ["main", "_MixingFactory"]

if __name__ == "__main__":
    sys.exit(main())
