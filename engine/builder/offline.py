"""Without a model to call (the offline model), the builder drafts from the built-in action templates: the one
whose name, description and prompt share the most words with the request; with none in common, an ai step whose
prompt is the request itself. Its reply says so plainly."""

from __future__ import annotations

import re
from typing import Any

from engine.actions.templates import TEMPLATES
from engine.builder.proposal import Draft

WORD = re.compile(r"[a-z0-9]+")
# Words every request and template share without saying what they are about.
COMMON = set(
    "a an and the of to for in on each every our their this that it its with by from as at is are be give one two "
    "three record records lead leads row rows action step please me my we us you".split()
)
SYNONYMS = {"icp": "ideal", "fit": "profile", "rank": "score", "rate": "score", "opener": "linkedin"}


def offline_draft(request: str, existing: dict[str, Any] | None) -> tuple[Draft, str, str | None]:
    """The draft, the line its reply opens with (naming the template, or saying none matched), and the template.
    Its prompt names no field: the step is given the whole record and the global context (context injection)."""
    wanted = _words(request)
    scored = sorted(((len(wanted & _template_words(n, t)), n) for n, t in TEMPLATES.items()), reverse=True)
    best, name = scored[0]
    if best == 0:
        draft = Draft(
            kind="ai",
            options={"prompt": request.strip(), "tier": "standard"},
            description=request.strip(),
            plan=("Use the request as the step's prompt, over the whole record and the global context.",),
            changes="A new ai step whose prompt is your request.",
        )
        note = "offline: no built-in template matches your words, so the step's prompt is your request; set a model "
        return draft, note + "to have it written for you", None
    template = TEMPLATES[name]
    draft = Draft(
        kind=template["kind"],
        options=dict(template["options"]),
        description=template["description"],
        plan=(
            f"Start from the built-in template {name}: {template['description']}",
            "It is given the whole record and the global context (context injection), so it fits any campaign.",
        ),
        changes=f"The step and description of the template {name}" + (" replace the action's." if existing else "."),
    )
    return draft, f"offline: drafted from the template {name}; set a model to have it written for you", name


def _words(text: str) -> set[str]:
    found = {w for w in WORD.findall(text.lower()) if w not in COMMON and len(w) > 1}
    return found | {SYNONYMS[w] for w in found if w in SYNONYMS}


def _template_words(name: str, template: dict[str, Any]) -> set[str]:
    return _words(f"{name.replace('_', ' ')} {template['description']} {template['options'].get('prompt', '')}")
