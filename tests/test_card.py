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
