"""The action builder: a plain-language request becomes a checked, previewed step proposal shown as a diff of
the action's spec, applied only when accepted (chat.py); what it reads (reading.py, reference.py), the proposal
and its checks (proposal.py), the model's calls (model.py), offline drafts from the templates (offline.py), the
preview (preview.py) and the facts a question is answered from (questions.py)."""

from engine.builder.chat import ActionBuilder
from engine.builder.model import BuilderModel

__all__ = ["ActionBuilder", "BuilderModel"]
