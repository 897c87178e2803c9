"""The dataset's split names, in one place: out-of-domain splits and translation languages.

The dataset builder (:mod:`helpers.data`), the profiles and the notebooks' grids all read these.
"""

from __future__ import annotations

# Ten other business domains, each its own instance (tables, fields, spokes): data/catalog/domains/.
OOD_SPLITS: tuple[str, ...] = tuple(f"ood{i:02d}" for i in range(1, 11))

# Languages of the translated dev splits (dev-de, ...): data/language/ has a phrase pool for each.
LANGUAGES: tuple[str, ...] = ("de", "es", "fr", "ja", "he")

