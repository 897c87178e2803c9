"""The saved model's card: sentence-transformers' own, plus what this case study adds.

sentence-transformers writes its card from ``model.model_card_data`` (architecture, training
hyperparameters and logs, dataset statistics, library versions). :func:`save_with_card` fills in the
name and keeps it offline, lets ``model.save`` write it, and appends one section with what that card
cannot know: the per-task prompts to encode with, the training config, the data counts per task
(before and after the cap), the inference length and the dev metrics. :func:`save_with_section` is the
same step for a model made without training (a merge with the base, :mod:`helpers.merge`).
"""

from __future__ import annotations

import platform
from pathlib import Path

from helpers.evaluation import report_markdown
from helpers.io import atomic_write_text


def save_with_card(model, folder: Path, cfg, prof, prompts: dict, log: dict) -> None:
    """``model.save(folder)`` with sentence-transformers' card and our section appended to ``README.md``."""
    save_with_section(model, folder, f"{cfg.name}: multi-task retriever fine-tuned from {cfg.base_model}",
                      case_study_section(cfg, prof, prompts, log))


def save_with_section(model, folder: Path, model_name: str, section: str) -> None:
    """``model.save(folder)`` with sentence-transformers' card (offline) and ``section`` appended to it.

    Also used for models this case study makes without training (:mod:`helpers.merge`).
    """
    card = model.model_card_data
    card.model_name = model_name
    card.local_files_only = True           # never ask the Hub about the base model or datasets
    card.generate_widget_examples = False  # its examples are generic English, not this domain
    model.save(str(folder), create_model_card=True)
    readme = Path(folder) / "README.md"
    generated = readme.read_text(encoding="utf-8").rstrip() + "\n\n" if readme.is_file() else ""
    atomic_write_text(readme, generated + section)


def prompts_lines(prompts: dict) -> list[str]:
    """Markdown lines: the prompts table and how to encode with them."""
    lines = ["### Prompts", "", "Use the per-task prompt names when encoding:", "", "| name | text |", "|---|---|"]
    for k in sorted(prompts):
        lines.append(f"| `{k}` | `{prompts[k]}` |")
    return lines + ["", "```python", "from sentence_transformers import SentenceTransformer",
                    "model = SentenceTransformer('PATH')",
                    "q = model.encode(['notify the manager when a P1 incident opens'], prompt_name='step_query')",
                    "d = model.encode(['Send Email (action): ...'], prompt_name='step_document')", "```", ""]


def recipe_line(cfg, prof, log: dict) -> str:
    """Markdown: which recipe trained the model, with the settings that define it."""
    if cfg.recipe != "catalog":
        top = f", top {cfg.train_top_layers} layers trained" if cfg.train_top_layers else ""
        return ("Fine-tuned with `helpers.train`, recipe `paper` (sentence-transformers `SentenceTransformerTrainer`, "
                f"MultipleNegativesRankingLoss, scale {cfg.loss_scale}, homogeneous per-task batches, "
                f"`{cfg.mixing}` mixing{top}) under the `{prof.name}` profile.")
    res = log.get("resolved", {})
    tr = log.get("training", {})
    cat = tr.get("catalog", {})
    epochs = f"{tr['global_step'] / cat['batches_per_epoch']:.3g}" if cat.get("batches_per_epoch") else "?"
    sample = res.get("catalog_sample")
    scored = "its task's whole training catalog" if sample is None else f"{sample} objects of its task's catalog"
    where = "on disk" if res.get("cache_lower_layers") == "disk" else "in memory"
    return ("Fine-tuned with `helpers.train`, recipe `catalog` (`helpers.training.catalog_recipe`) under the "
            f"`{prof.name}` profile: the top {res.get('train_top_layers')} transformer layers trained on the frozen "
            f"lower layers' states (cut after layer {cat.get('cut_layer', '?')}, cached once per text, "
            f"{res.get('cache_dtype')} {where}); "
            f"every training query with all its gold objects scored against {scored} (multi-positive InfoNCE, "
            f"form `{res.get('catalog_loss')}`, scale {cfg.loss_scale}), batches of {res.get('batch_size')} query "
            f"groups of one task, {epochs} epoch(s) over every training pair, learning rate "
            f"{cfg.learning_rate}.{anchor_sentence(cat.get('anchor'))}")


def anchor_sentence(anchor: dict | None) -> str:
    """Markdown: the anchor term the model was trained with (``helpers.training.anchor``), or nothing."""
    if not anchor:
        return ""
    return (f" Trained with an anchor term of weight {anchor['weight']}: each step, {anchor['batch']} workflow "
            f"texts of the {anchor['flows']} training flows (requirements and YAML, with the workflow prompts, "
            f"cut at {anchor['length']} tokens) were held near the base model's embeddings, the loss adding "
            f"{anchor['weight']} x mean(1 - cos(model, base)) (`helpers.training.anchor`).")


def case_study_section(cfg, prof, prompts: dict, log: dict) -> str:
    """Markdown: how this model was trained here, and how to encode with it."""
    import yaml

    lines = ["## Case study: multi-task instruction fine-tuning", ""]
    if cfg.description:
        lines += [cfg.description.strip(), ""]
    lines += [recipe_line(cfg, prof, log), ""]
    lines += prompts_lines(prompts)
    lines += ["### Training data", "", "| task | pairs before cap | objects | after cap | used | steps |",
              "|---|---|---|---|---|---|"]
    data = log.get("data", {})
    for t in cfg.tasks:
        ds = data.get("downsampling", {}).get(t, {})
        lines.append(f"| {t} | {ds.get('before', {}).get('pairs', '?')} | {ds.get('before', {}).get('objects', '?')} "
                     f"| {ds.get('after', {}).get('pairs', '?')} | {data.get('used', {}).get(t, '?')} "
                     f"| {log.get('training', {}).get('steps_per_task', {}).get(t, '?')} |")
    tr = log.get("training", {})
    res = log.get("resolved", {})
    lines += ["", f"Steps: {tr.get('global_step')}, batch size {res.get('batch_size')}, "
              f"trained at max_seq_length {res.get('max_seq_length')} (fitted to the training texts), "
              f"saved with {res.get('inference_max_seq_length')} (the base model's) for inference, "
              f"{tr.get('pairs_per_second', 0):.1f} pairs/s on {platform.machine()} "
              f"({tr.get('world_size', 1)} process(es)).", ""]
    ev = log.get("eval", {})
    if ev.get("final"):
        lines += ["### Evaluation", "", report_markdown({"fine-tuned": ev["final"],
                                                         **({"base": ev["base"]} if ev.get("base") else {})})]
    lines += ["### Config", "", "```yaml", yaml.safe_dump(cfg.as_dict(), sort_keys=True).rstrip(), "```", ""]
    return "\n".join(lines)
