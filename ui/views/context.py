"""The context page (its logic: ui/context_page.py)."""

from ui import context_page

context_page.render()
