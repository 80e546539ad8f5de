"""The settings page (its logic: ui/settings_page.py)."""

from ui import settings_page

settings_page.render()
