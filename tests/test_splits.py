"""helpers.splits: the split constants have one definition, which every reader uses."""

from helpers.splits import LANGUAGES, OOD_SPLITS


def test_every_reader_uses_the_one_definition():
    from helpers.data.catalog import SPLITS_OOD
    from helpers.data.language import TRANSLATED
    from helpers.experiments import LANGS, OOD_SPLITS as NOTEBOOK_OOD, TASK_K
    from helpers.profiles import PROFILES
    from helpers.tasks import TASKS

    assert OOD_SPLITS == tuple(f"ood{i:02d}" for i in range(1, 11)) and LANGUAGES == ("de", "es", "fr", "ja", "he")
    assert SPLITS_OOD == list(OOD_SPLITS) == NOTEBOOK_OOD and TRANSLATED == LANGUAGES and LANGS == list(LANGUAGES)
    assert PROFILES["cpu"].ood_splits == OOD_SPLITS
    assert TASK_K == {t: task.k for t, task in TASKS.items()} == {"step": 15, "table": 5, "field": 5, "workflow": 5}
