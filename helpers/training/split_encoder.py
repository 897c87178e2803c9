"""A SentenceTransformer cut in two: a frozen bottom run once per text, a trainable top run per step.

For a model whose first module is a sentence-transformers ``Transformer`` over a BERT-like backbone
(``embeddings`` + ``encoder.layer``; both our bases are ``BertModel``), :class:`SplitEncoder` runs

- :meth:`~SplitEncoder.bottom`: embeddings and layers ``[0, L)``, without gradients, in eval mode, giving
  the layer-``L`` hidden states of each text's real tokens (what :mod:`helpers.training.layer_cache`
  stores), and
- :meth:`~SplitEncoder.top`: layers ``[L, N)`` on those states, then the model's own remaining modules
  (pooling, normalisation, any dense layer), so the embedding is the one the full model computes, with
  gradients on the top layers only. The texts run in chunks of similar length (:data:`TOP_CHUNK`, sorted
  by token count), each padded to its own longest: a task's catalog pads to its longest text otherwise,
  and on the 891 training fields (37 tokens on average, 83 at most) one forward and backward pass took
  3.1x as long (24 s against 7.7 s, fp32, 2 threads), with the same embeddings (to 1e-7).

The masks come from the backbone's own helper (``BertModel._create_attention_masks``, which picks the
format the configured attention implementation wants: a 4D additive mask for eager, a boolean or no
mask for sdpa), never re-derived here. Positions are added by the embeddings, below the cut, so the
top layers see a text's states the same whether its batch was padded on the right or the left.

The split shares the model's modules: training the top trains the ``SentenceTransformer`` itself, which
saves and loads as usual.
"""

from __future__ import annotations

from typing import Sequence

from helpers.io import DataError

#: The config key whose value sets the cut; named in every error about it.
FIELD = "train_top_layers"

#: Texts per chunk in :meth:`SplitEncoder.top` (64 and 128 measured within 15% of each other).
TOP_CHUNK = 64


def backbone_layers(model) -> tuple:
    """``(backbone, layers)`` of a SentenceTransformer over a BERT-like model, or one clear DataError."""
    first = model[0] if len(model) else None
    backbone = getattr(first, "auto_model", None)
    layers = getattr(getattr(backbone, "encoder", None), "layer", None)
    if backbone is None or layers is None or not hasattr(backbone, "embeddings") \
            or not hasattr(backbone, "_create_attention_masks"):
        raise DataError(f"cached lower layers need a Transformer module over a BERT-like model (embeddings + "
                        f"encoder.layer); this model's first module is {type(first).__name__} over "
                        f"{type(backbone).__name__}", field=FIELD)
    if getattr(backbone.config, "is_decoder", False):
        raise DataError(f"cached lower layers need a bidirectional encoder; {type(backbone).__name__} is "
                        "configured as a decoder", field=FIELD)
    return backbone, list(layers)


def check_top_layers(top: object, n_layers: int, field: str = FIELD) -> int:
    """``top`` as an int in ``[1, n_layers]``, or one DataError line naming ``field``."""
    if isinstance(top, bool) or not isinstance(top, int):
        raise DataError(f"must be a whole number of layers, got {top!r}", field=field)
    if not 1 <= top <= n_layers:
        raise DataError(f"must be between 1 and the model's {n_layers} layers, got {top}", field=field)
    return top


class SplitEncoder:
    """The model cut after layer ``L = N - top_layers``; see the module docstring.

    Construction freezes the embeddings, the layers below the cut and the unused pooler of the
    backbone, and leaves the top layers (and any trainable module after the Transformer) trainable.
    """

    def __init__(self, model, top_layers: int):
        self.model = model
        self.backbone, self.layers = backbone_layers(model)
        self.top_layers = check_top_layers(top_layers, len(self.layers))
        self.cut = len(self.layers) - self.top_layers
        self.hidden_size = int(self.backbone.config.hidden_size)
        self._freeze()

    def _freeze(self) -> None:
        frozen = [self.backbone.embeddings, *self.layers[:self.cut]]
        if getattr(self.backbone, "pooler", None) is not None:
            frozen.append(self.backbone.pooler)   # mean pooling never uses BERT's CLS pooler
        for module in frozen:
            for p in module.parameters():
                p.requires_grad_(False)

    def bottom_modules(self) -> list:
        """The modules whose weights decide the cached states (for the cache key)."""
        return [self.backbone.embeddings, *self.layers[:self.cut]]

    def top_parameters(self) -> list:
        """The trainable parameters, in a fixed order (top layers, then later modules)."""
        return [p for p in self.model.parameters() if p.requires_grad]

    def tokenize(self, texts: Sequence[str], prompt: str, max_length: int) -> dict:
        """The model's own preprocessing: ``prompt + text``, truncated at ``max_length`` tokens."""
        return self.model.preprocess(list(texts), prompt=prompt or None, max_length=max_length)

    def bottom(self, features: dict) -> list:
        """Layer-``L`` hidden states of each text's real tokens (fp32, no gradient), one tensor per text."""
        import torch

        was_training = self.backbone.training
        self.backbone.eval()   # no dropout: the cache must hold what inference computes
        try:
            with torch.no_grad():
                ids, mask = features["input_ids"], features["attention_mask"]
                hidden = self.backbone.embeddings(input_ids=ids, token_type_ids=features.get("token_type_ids"))
                hidden = self._run_layers(self.layers[:self.cut], hidden, mask)
        finally:
            self.backbone.train(was_training)
        keep = mask.bool()
        return [hidden[i][keep[i]].clone() for i in range(hidden.shape[0])]

    def _run_layers(self, layers, hidden, mask):
        ext, _ = self.backbone._create_attention_masks(attention_mask=mask, encoder_attention_mask=None,
                                                       embedding_output=hidden, encoder_hidden_states=None,
                                                       past_key_values=None)
        for layer in layers:
            hidden = layer(hidden, ext)
        return hidden

    def top(self, states: Sequence, prompt_length: int | None = None, chunk: int = TOP_CHUNK):
        """Sentence embeddings from per-text layer-``L`` states (any float dtype): layers ``[L, N)`` and the
        model's modules after the Transformer (pooling, normalisation), in chunks of ``chunk`` texts of
        similar length, returned in the order of ``states``. Gradients reach the top only."""
        import torch

        lengths = [int(s.shape[0]) for s in states]
        if min(lengths) < 1:
            raise ValueError("a cached text has no tokens")
        order = sorted(range(len(states)), key=lengths.__getitem__)
        parts = [self._top_chunk([states[i] for i in order[k:k + chunk]], prompt_length)
                 for k in range(0, len(order), chunk)]
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(len(order))
        return torch.cat(parts)[inverse]

    def _top_chunk(self, states: Sequence, prompt_length: int | None):
        import torch

        dtype = next(iter(self.layers[-1].parameters())).dtype
        lengths = torch.tensor([s.shape[0] for s in states])
        hidden = torch.nn.utils.rnn.pad_sequence([s.to(dtype) for s in states], batch_first=True)
        mask = (torch.arange(hidden.shape[1])[None, :] < lengths[:, None]).long()
        hidden = self._run_layers(self.layers[self.cut:], hidden, mask)
        features = {"token_embeddings": hidden, "attention_mask": mask}
        if prompt_length is not None:
            features["prompt_length"] = prompt_length
        for module in list(self.model)[1:]:
            features = module(features)
        return features["sentence_embedding"]
