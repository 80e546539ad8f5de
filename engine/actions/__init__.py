"""The action library: workspace-level actions run on one record or added to a campaign (engine/actions/library.py),
finding the record to act on (records.py) and the built-in templates (templates.py)."""

from engine.actions.library import CATEGORIES, ActionLibrary, may_run, may_see
from engine.actions.templates import TEMPLATES

__all__ = ["CATEGORIES", "TEMPLATES", "ActionLibrary", "may_run", "may_see"]
