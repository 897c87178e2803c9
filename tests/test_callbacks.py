"""helpers.training.callbacks: the step records a checkpoint carries for a resumed run."""

import json

from helpers.training.callbacks import STEP_STATS_FILE, load_step_stats, step_record


def test_step_records_round_trip_and_old_checkpoints_say_so(tmp_path):
    stat = ("step", 8, 120, 160, 12.5, 0.75)            # task, pairs, tokens, padded, start time, loss
    assert step_record(stat) == ["step", 8, 120, 160, 0.75]   # the timestamp is this process's only
    (tmp_path / STEP_STATS_FILE).write_text(json.dumps({"complete": True, "steps": [step_record(stat)]}))
    assert load_step_stats(tmp_path) == [["step", 8, 120, 160, 0.75]]
    (tmp_path / STEP_STATS_FILE).write_text(json.dumps({"complete": False, "steps": []}))
    assert load_step_stats(tmp_path) is None
    assert load_step_stats(tmp_path / "missing") is None
