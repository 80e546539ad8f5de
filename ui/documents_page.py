"""The Documents page: the markdown documents actions produced (meeting prep notes for an account...), newest
first, each with its title, action, record, author and time; open one to read it, download it as a .md file."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import streamlit as st

from ui import reads, session

LISTED = ("document_id", "title", "action", "campaign", "row_id", "author", "created_at")


def render() -> None:
    st.title("Documents")
    ws = reads.workspace()
    if ws is None:
        return
    session.show_notices()
    with session.friendly():
        library = ws.actions(actor=session.actor(), trigger="ui")
        found = reads.kept(ws, ("documents",), library.documents)
        if not found:
            st.caption(
                "No document yet. An action that produces a document (such as meeting prep notes) stores one each "
                "time it runs on a record: run one from the **Record** page."
            )
            return
        st.dataframe(pd.DataFrame([{k: d.get(k) for k in LISTED} for d in found]), hide_index=True, width="stretch")
        ids = [int(d["document_id"]) for d in found]
        chosen = st.selectbox(
            "Open a document",
            ids,
            key="document-open",
            format_func=lambda i: label(next(d for d in found if d["document_id"] == i)),
        )
        if chosen is not None:
            show(library.document(int(chosen)))


def label(document: dict[str, Any]) -> str:
    return f"#{document['document_id']} · {document['title']} · {document['action']} · row {document['row_id']}"


def show(document: dict[str, Any]) -> None:
    with st.container(border=True, key="document-body"):
        st.markdown(f"### {document['title']}")
        when = document.get("created_at")
        st.caption(
            f"By {document['author']} · action **{document['action']}** · campaign {document['campaign']}, "
            f"row {document['row_id']} · {when:%Y-%m-%d %H:%M:%S}"
            if when is not None
            else f"By {document['author']} · action **{document['action']}**"
        )
        st.markdown(document["body"] or "")
    st.download_button(
        "Download as .md",
        data=document["body"] or "",
        file_name=file_name(document),
        mime="text/markdown",
        key="document-download",
        icon=":material/download:",
    )


def file_name(document: dict[str, Any]) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", str(document["title"])).strip("-").lower() or "document"
    return f"{stem}-{document['document_id']}.md"
