"""The record page (its logic: ui/record_page.py)."""

from ui import record_page

record_page.render()
