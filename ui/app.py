"""The Streamlit app `runsheet ui` serves: page setup, the sidebar (workspace, campaign picker, credits, runs
going) and the navigation between the pages in `ui/views/`. Each page's logic lives in its own `ui` module.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run ui/app.py` puts ui/ on the path, not the project root
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from ui import login, reads, sidebar  # noqa: E402

st.set_page_config(
    page_title="Runsheet", page_icon=":material/table_view:", layout="wide", initial_sidebar_state="expanded"
)

PAGES = [
    # The grid is served at / (the default page's own url_path is never shown) and at /grid, a hidden alias: a
    # default page answers only at /, and /grid would open it under a "Page not found" modal.
    st.Page("views/grid.py", title="Grid", icon=":material/table_view:", url_path="home", default=True),
    st.Page("views/grid.py", title="Grid", icon=":material/table_view:", url_path="grid", visibility="hidden"),
    st.Page("views/record.py", title="Record", icon=":material/person:", url_path="record"),
    st.Page("views/actions.py", title="Actions", icon=":material/bolt:", url_path="actions"),
    st.Page("views/documents.py", title="Documents", icon=":material/article:", url_path="documents"),
    st.Page("views/sql.py", title="SQL", icon=":material/database:", url_path="sql"),
    st.Page("views/activity.py", title="Activity", icon=":material/history:", url_path="activity"),
    st.Page("views/context.py", title="Context", icon=":material/description:", url_path="context"),
    st.Page("views/data.py", title="Import / Export", icon=":material/swap_vert:", url_path="data"),
    st.Page("views/settings.py", title="Settings", icon=":material/settings:", url_path="settings"),
]

# Less empty space above the content: a grid wants the screen.
st.html("<style>[data-testid='stMainBlockContainer']{padding:4.5rem 2rem 1rem 2rem}</style>")
reads.fresh()
signed_in = login.gate()  # a workspace with users asks for a login first (the form is all this run draws)
page = st.navigation(PAGES, position="top" if signed_in else "hidden")
if signed_in:
    sidebar.prepare()
    page.run()
    sidebar.render()  # after the page: the grid reaches the browser first
