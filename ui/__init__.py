"""Runsheet's Streamlit UI. `ui/app.py` is the entry `runsheet ui` serves; every module here imports only the
public `engine` API. Pure presentation logic (`cells`, `runs`) has no Streamlit import, so it is unit-testable.
"""
