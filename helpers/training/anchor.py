"""A loss term that holds the untrained task's embeddings near the base model's: :class:`Anchor`.

Issue 24: fine-tuning on steps, tables and fields moves the model away from what its base knew, and
workflow retrieval (never trained) is where it shows. Merging with the base (:mod:`helpers.merge`) pulls
the weights back after training; the anchor term pulls the *embeddings* of workflow-level texts back during
training (``anchor_weight`` in the catalog recipe, :mod:`helpers.training.catalog_recipe`).

- **Texts.** The workflow-level texts of the *training* flows only (``<data>/flows/train.jsonl``): each
  flow's ``requirement`` (a request, as a workflow query) and ``yaml`` (the flow, as a workflow document),
  prompted as evaluation prompts the workflow task (the model's ``workflow_query`` / ``workflow_document``),
  so the term protects the embeddings evaluation computes. Dev, OOD and translated flows are never read.
- **Base embeddings.** Computed once before the first step by the model as given (the base), as the top
  layers on the cached lower-layer states (:class:`~helpers.training.layer_cache.LayerCache`), in eval mode
  and under the run's autocast. A full forward at the inference length would be cheaper to explain but
  differs from what a step computes (training length, bf16-cached states): the term would start above
  zero and pull the weights toward that difference. From the same cache the term is zero before any step
  and measures only how far the trained top layers moved.
- **Per step.** A seeded sample of ``anchor_batch`` texts, half requirements and half YAML (each side its
  own sample of flows, so both sides of the workflow score are held every step, not one side in one step
  and the other in the next), is encoded by the current model from its cache, in eval mode (no dropout:
  the term is the drift of what evaluation computes, not dropout noise) with gradients through the top.
- **Loss.** ``mean(1 - cos(current, base))``. Retrieval ranks by cosine, so a change of norm costs nothing;
  sentence-transformers' ``MSELoss`` (the paper recipe's distillation loss) on raw embeddings would also
  penalise the norm. On unit vectors the two agree: ``||a - b||^2 = 2 (1 - cos)``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from helpers.io import DataError, read_jsonl

#: The flows file the anchor texts come from, inside a dataset folder.
FLOWS_FILE = Path("flows") / "train.jsonl"
#: The task whose prompts the anchor texts take (evaluation-only: never trained).
TASK = "workflow"
FIELD = "anchor_weight"


@dataclass(frozen=True)
class AnchorTexts:
    """The anchor texts and their prompts; ``requirements[i]`` and ``documents[i]`` are one flow's."""

    requirements: list[str]
    documents: list[str]
    query_prompt: str
    document_prompt: str
    source: str


def load_anchor_texts(data_dir: str | Path, prompts: Mapping[str, str]) -> AnchorTexts:
    """The training flows' requirements and YAML with the model's workflow prompts (``prompts``: the saved
    model's ``<task>_query`` / ``<task>_document`` table). A missing file, or a line without ``requirement``
    or ``yaml``, fails in one line naming it."""
    path = Path(data_dir) / FLOWS_FILE
    if not path.is_file():
        raise DataError(f"{FIELD} > 0 needs the training flows (a dataset folder from `python -m helpers.data "
                        "build`); not found", file=path)
    rows = [r for _, r in read_jsonl(path, required=("requirement", "yaml"))]
    if not rows:
        raise DataError("no training flows in the file", file=path)
    return AnchorTexts([r["requirement"] for r in rows], [r["yaml"] for r in rows],
                       prompts[f"{TASK}_query"], prompts[f"{TASK}_document"], str(path))


def anchor_sample(n_flows: int, batch: int, seed: int, step: int) -> tuple[list[int], list[int]]:
    """Flows whose requirement and whose YAML anchor ``step``: ``ceil(batch / 2)`` and ``floor(batch / 2)``
    of them (at most every flow), drawn without replacement, seeded by ``(seed, step)`` so a resumed run
    draws what the uninterrupted one did."""
    rng = np.random.default_rng([seed, step, zlib.crc32(b"anchor")])
    sides = [(batch + 1) // 2, batch // 2]
    return tuple(sorted(rng.choice(n_flows, size=min(k, n_flows), replace=False).tolist()) for k in sides)


def drift(current, base):
    """``mean(1 - cos)`` over rows, in fp32 (the term's value and its gradient)."""
    import torch

    return (1 - torch.nn.functional.cosine_similarity(current.float(), base.float(), dim=-1)).mean()


class Anchor:
    """The anchor texts cached, their base embeddings, and the term for a step (:meth:`loss`)."""

    def __init__(self, texts: AnchorTexts, split, cache, precision: str):
        import torch

        self.texts, self.split, self.cache, self.precision = texts, split, cache, precision
        self.sides = ((texts.requirements, texts.query_prompt), (texts.documents, texts.document_prompt))
        for side, prompt in self.sides:
            cache.ensure(side, prompt)
        with torch.no_grad():   # SplitEncoder.top runs the texts in chunks of similar length itself
            self.base = [self._encode(side, prompt).float() for side, prompt in self.sides]

    def _encode(self, texts, prompt: str):
        """Top layers on the cached states of ``texts``, in eval mode under the run's autocast."""
        import torch

        model = self.split.model
        was_training = model.training
        model.eval()
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                return self.split.top(self.cache.states(texts, prompt), self.cache.prompt_length(prompt))
        finally:
            model.train(was_training)

    def loss(self, batch: int, seed: int, step: int):
        """The term of ``step``: :func:`drift` over its sampled texts, both sides together."""
        import torch

        picks = anchor_sample(len(self.texts.requirements), batch, seed, step)
        current, base = [], []
        for (side, prompt), rows, ref in zip(self.sides, picks, self.base):
            if rows:
                current.append(self._encode([side[i] for i in rows], prompt))
                base.append(ref[rows])
        return drift(torch.cat([c.float() for c in current]), torch.cat(base))
