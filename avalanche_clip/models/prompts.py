"""Class-name prompts.

A class ``k`` with name ``n_k`` is described by one or more templates (``"a photo of a {}."``);
its text embedding is the normalised mean of the normalised template embeddings (CLIP's prompt
ensembling). Template sets are named so configs can pick one.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Named template sets. "photo" is the paper's single prompt; "ensemble" a short, generic
#: ensemble for image benchmarks.
TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    "photo": ("a photo of a {}.",),
    "ensemble": (
        "a photo of a {}.",
        "a blurry photo of a {}.",
        "a low resolution photo of a {}.",
        "a drawing of a {}.",
        "a painting of a {}.",
        "a sketch of a {}.",
        "a close-up photo of a {}.",
    ),
    "digit": ('a photo of the number: "{}".',),
    "plain": ("{}",),
}


def resolve_templates(templates: str | Sequence[str]) -> tuple[str, ...]:
    """A template-set name or an explicit sequence of ``{}``-templates → a checked tuple."""
    if isinstance(templates, str):
        if templates not in TEMPLATE_SETS:
            raise ValueError(
                f"unknown template set {templates!r}; expected one of {sorted(TEMPLATE_SETS)} "
                "or a list of strings containing '{}'"
            )
        return TEMPLATE_SETS[templates]
    resolved = tuple(templates)
    if not resolved:
        raise ValueError("templates must not be empty")
    for template in resolved:
        if not isinstance(template, str) or "{}" not in template:
            raise ValueError(f"template {template!r} must be a string containing '{{}}'")
        try:  # the class name is the one argument: any other placeholder fails at prompt time
            template.format("class name")
        except (IndexError, KeyError, ValueError) as err:
            raise ValueError(
                f"template {template!r} has a placeholder other than one '{{}}' "
                f"({type(err).__name__}: {err}); write the class name as '{{}}' and any literal "
                "brace as '{{' or '}}'"
            ) from None
    return resolved


def readable_class_name(name: str) -> str:
    """Folder-style names (``"sea_turtle"``, ``"hot-air balloon"``) as prompt text."""
    return name.replace("_", " ").strip()


def class_prompts(class_names: Sequence[str], templates: Sequence[str]) -> list[str]:
    """All prompts, class-major: ``[t0(c0), t1(c0), ..., t0(c1), ...]`` (length K·T)."""
    return [template.format(readable_class_name(n)) for n in class_names for template in templates]
