"""helpers.splits: the split names, each with what the dataset needs to build it."""

from helpers.splits import LANGUAGES, OOD_SPLITS


def test_every_ood_split_has_a_domain_and_every_language_a_phrase_pool(catalog):
    from helpers.data.language import LANG_DIR
    from helpers.profiles import PROFILES

    assert OOD_SPLITS == tuple(f"ood{i:02d}" for i in range(1, 11)) and LANGUAGES == ("de", "es", "fr", "ja", "he")
    assert set(OOD_SPLITS) <= {d.split for d in catalog.domains.values()}
    assert all((LANG_DIR / f"{lang}.yaml").is_file() for lang in LANGUAGES)
    assert all(set(p.ood_splits) <= set(OOD_SPLITS) for p in PROFILES.values())
