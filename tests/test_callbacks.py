"""helpers.training.callbacks: the step records a checkpoint carries for a resumed run."""

import json
import os

from helpers.training.callbacks import STEP_STATS_FILE, load_step_stats, step_record


def test_step_records_round_trip_and_old_checkpoints_say_so(tmp_path):
    stat = ("step", 8, 120, 160, 12.5, 0.75)            # task, pairs, tokens, padded, start time, loss
    assert step_record(stat) == ["step", 8, 120, 160, 0.75]   # the timestamp is this process's only
    (tmp_path / STEP_STATS_FILE).write_text(json.dumps({"complete": True, "steps": [step_record(stat)]}))
    assert load_step_stats(tmp_path) == [["step", 8, 120, 160, 0.75]]
    (tmp_path / STEP_STATS_FILE).write_text(json.dumps({"complete": False, "steps": []}))
    assert load_step_stats(tmp_path) is None
    assert load_step_stats(tmp_path / "missing") is None


def test_task_length_collator_cuts_each_task_at_its_length():
    from helpers.models import load_encoder
    from helpers.training.callbacks import trainer_classes

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = load_encoder("minilm-l6")
    collator_cls = trainer_classes()[0].data_collator_class
    collator = collator_cls(preprocess_fn=model.preprocess)
    collator.task_lengths = {"step": 8, "field": 24}
    long = " ".join(["requirement"] * 60)
    for task, n in (("step", 8), ("field", 24)):
        batch = collator([{"anchor": long, "positive": long, "dataset_name": task}] * 2)
        assert batch["anchor_input_ids"].shape[1] == n and batch["positive_input_ids"].shape[1] == n
