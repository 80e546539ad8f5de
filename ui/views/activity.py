"""The activity page (its logic: ui/activity.py)."""

from ui import activity

activity.render()
