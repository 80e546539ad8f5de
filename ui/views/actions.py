"""The action library page (its logic: ui/actions_page.py)."""

from ui import actions_page

actions_page.render()
