"""The grid page (its logic: ui/grid.py)."""

from ui import grid

grid.render()
