"""The sql page (its logic: ui/sql_page.py)."""

from ui import sql_page

sql_page.render()
