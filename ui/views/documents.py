"""The documents page (its logic: ui/documents_page.py)."""

from ui import documents_page

documents_page.render()
