"""helpers.training.split_encoder: top(bottom(x)) is the full model's embedding; bad cuts fail in one line."""

import pytest
import torch

from helpers.io import DataError
from helpers.training.split_encoder import SplitEncoder

# different lengths, so every batch is padded; prompts as training uses them
TEXTS = ["reset a password", "Close the incident task when every approval on the requested item is granted "
         "and notify the assignment group", "incident_task.closed_at: Closed (datetime)", "x"]
PROMPTS = ["", "Given a workflow request, retrieve the step: ", "passage: "]


@pytest.fixture
def minilm():
    from helpers.models import load_encoder

    return load_encoder("minilm-l6")


@pytest.mark.slow
@pytest.mark.parametrize("top", [1, 2, 6])
def test_top_of_bottom_is_the_full_embedding(minilm, top):
    split = SplitEncoder(minilm, top)
    assert split.cut == 6 - top
    minilm.eval()
    minilm.max_seq_length = 24      # some texts are cut: the same length on both sides
    for prompt in PROMPTS:
        features = split.tokenize(TEXTS, prompt, 24)
        states = split.bottom(features)
        assert [s.shape[0] for s in states] == features["attention_mask"].sum(1).tolist()
        with torch.no_grad():
            got = split.top(states)
            got_bf16 = split.top([s.to(torch.bfloat16) for s in states])
        want = minilm.encode(TEXTS, prompt=prompt or None, convert_to_tensor=True)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
        assert torch.nn.functional.cosine_similarity(got_bf16, want).min() > 0.999


def test_chunks_of_similar_length_give_the_whole_batchs_embeddings_in_its_order(minilm):
    split = SplitEncoder(minilm, 2)
    minilm.eval()
    states = split.bottom(split.tokenize(TEXTS * 3, "passage: ", 32))   # lengths unsorted, repeated
    with torch.no_grad():
        whole = split.top(states, chunk=len(states))
        for chunk in (1, 2, 5):
            torch.testing.assert_close(split.top(states, chunk=chunk), whole, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(whole[0], whole[1])   # the order matters: distinct texts differ


@pytest.mark.slow
def test_states_do_not_depend_on_the_batch(minilm):
    split = SplitEncoder(minilm, 2)
    alone = [split.bottom(split.tokenize([t], "", 64))[0] for t in TEXTS]
    together = split.bottom(split.tokenize(TEXTS, "", 64))
    for a, b in zip(alone, together):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_only_the_top_is_trainable_and_gets_gradients(minilm):
    split = SplitEncoder(minilm, 2)
    layers = minilm[0].auto_model.encoder.layer
    trainable = {id(p) for p in split.top_parameters()}
    assert trainable == {id(p) for layer in layers[4:] for p in layer.parameters()}
    minilm.train()
    emb = split.top(split.bottom(split.tokenize(TEXTS, "", 32)))
    emb.sum().backward()
    assert all(p.grad is not None for p in split.top_parameters())
    assert all(p.grad is None for p in layers[3].parameters())


@pytest.mark.slow
@pytest.mark.parametrize("top, says", [(7, "between 1 and the model's 6 layers, got 7"),
                                       (0, "between 1 and the model's 6 layers, got 0"),
                                       (-2, "got -2"), (2.5, "whole number of layers, got 2.5")])
def test_bad_layer_counts_fail_in_one_line_naming_the_field(minilm, top, says):
    with pytest.raises(DataError) as e:
        SplitEncoder(minilm, top)
    msg = str(e.value)
    assert "train_top_layers" in msg and says in msg and "\n" not in msg


def test_a_model_without_bert_layers_fails_in_one_line():
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    model = SentenceTransformer(modules=[Pooling(8)], device="cpu")
    with pytest.raises(DataError, match=r"train_top_layers.*BERT-like model") as e:
        SplitEncoder(model, 1)
    assert "\n" not in str(e.value)
