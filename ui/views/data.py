"""The data page (its logic: ui/data_page.py)."""

from ui import data_page

data_page.render()
