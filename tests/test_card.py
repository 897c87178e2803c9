"""helpers.training.card: the section this study appends to sentence-transformers' model card."""

from helpers.profiles import get_profile
from helpers.tasks import task_prompts
from helpers.training.card import case_study_section
from helpers.training.config import TrainConfig


def test_section_has_prompts_data_lengths_metrics_and_config():
    cfg = TrainConfig.from_dict({"name": "mt", "tasks": ["step", "table"], "cap_per_positive": 20})
    prompts = task_prompts({"query": "query: ", "document": "passage: "})
    log = {"data": {"downsampling": {"step": {"before": {"pairs": 90, "objects": 30}, "after": {"pairs": 60}}},
                    "used": {"step": 50}},
           "training": {"global_step": 7, "steps_per_task": {"step": 4, "table": 3}, "pairs_per_second": 5.0},
           "resolved": {"batch_size": 32, "max_seq_length": 64, "inference_max_seq_length": 512},
           "eval": {"final": {"dev": {"step": {"label": "Step@15", "headline": "recall@15", "recall@15": 0.5,
                                               "n_queries": 10, "n_docs": 20}}}}}
    text = case_study_section(cfg, get_profile("smoke"), prompts, log)
    assert f"| `step_query` | `{prompts['step_query']}` |" in text
    assert "| step | 90 | 30 | 60 | 50 | 4 |" in text and "| table | ? | ? | ? | ? | 3 |" in text
    assert "trained at max_seq_length 64" in text and "saved with 512" in text
    assert "| fine-tuned | dev | step | Step@15 | 0.5000 | 10 | 20 |" in text
    assert "cap_per_positive: 20" in text


def test_the_card_names_the_recipe_and_its_settings():
    from helpers.training.card import recipe_line

    paper = TrainConfig.from_dict({"tasks": ["step"], "train_top_layers": 4})
    assert "recipe `paper`" in recipe_line(paper, get_profile("smoke"), {}) and "top 4 layers" in \
        recipe_line(paper, get_profile("smoke"), {})
    cfg = TrainConfig.from_dict({"tasks": ["step"], "recipe": "catalog", "catalog_sample": 64})
    log = {"resolved": {"train_top_layers": 2, "cache_dtype": "bf16", "cache_lower_layers": "memory",
                        "catalog_sample": 64, "catalog_loss": "each", "batch_size": 32},
           "training": {"global_step": 30, "catalog": {"cut_layer": 10, "batches_per_epoch": 15}}}
    line = recipe_line(cfg, get_profile("smoke"), log)
    for text in ("recipe `catalog`", "top 2 transformer layers", "cut after layer 10", "bf16 in memory",
                 "64 objects of its task's catalog", "form `each`", "32 query groups", "2 epoch(s)"):
        assert text in line, text
