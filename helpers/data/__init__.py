"""The open enterprise-workflow retrieval dataset.

- :mod:`helpers.data.catalog`: the hand-curated catalog (tables, fields, steps, spokes) and its checks.
- :mod:`helpers.data.language`: phrase pools (train/test halves), alias splitting, template filling.
- :mod:`helpers.data.flows`: the flow generator (structure); :mod:`helpers.data.flow_yaml`: its YAML.
- :mod:`helpers.data.render`: requirement and step-annotation text, with the objects it names.
- :mod:`helpers.data.build`: ``build_dataset`` (BEIR folders, training pairs, stats).
- :mod:`helpers.data.validate`: ``validate_dataset``.

Command line: ``python -m helpers.data build --seed 0 --out DIR`` then ``validate DIR``.
"""

from helpers.data.catalog import load_catalog  # noqa: F401
