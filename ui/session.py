"""What every page shares: the workspace this server serves, the chosen campaign, who the user is, and the rule
that errors reach the user as one friendly line (what is wrong, then the fix), never as a traceback.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import streamlit as st

from engine import (
    Campaign,
    Login,
    NotFoundError,
    PermissionDeniedError,
    RunsheetError,
    Workspace,
    WorkspaceBusyError,
)

log = logging.getLogger(__name__)

# The UI waits this long (seconds) for a lock another process holds before saying the workspace is busy.
BUSY_TIMEOUT_ENV = "RUNSHEET_UI_BUSY_TIMEOUT"
BUSY_TIMEOUT_S = 8.0
LOGIN_KEY = "_login"  # the browser session's Login (engine/logins.py), set by ui/login.py
LOGIN_ENDED_KEY = "_login_ended"  # set when a login ended by itself, so the form says why it is back


def workspace_path() -> Path:
    return Path(os.environ.get("RUNSHEET_WORKSPACE") or "workspace").resolve()


def actor() -> str:
    """Who is using the UI: the user every write acts as (roles apply, engine/auth.py), recorded on runs and
    edits. Once the workspace has users, whoever logged in (ui/login.py); in an open workspace, $RUNSHEET_USER."""
    found = login()
    if found is not None:
        if not found.live():  # expired since the last full run (a fragment's rerun): the full run asks again
            end_login()
            st.rerun()
        return found.user
    return os.environ.get("RUNSHEET_USER") or os.environ.get("USER") or "ui"


def login() -> Login | None:
    """This browser session's login (ui/login.py), if any."""
    found = st.session_state.get(LOGIN_KEY)
    return found if isinstance(found, Login) else None


def end_login() -> None:
    """Forget this browser session's login because it ended (expired, logged out elsewhere, user removed): the
    login form says so once."""
    if st.session_state.pop(LOGIN_KEY, None) is not None:
        st.session_state[LOGIN_ENDED_KEY] = True


def workspace() -> Workspace | None:
    """The served workspace, or None after telling the user how to create it."""
    path = workspace_path()
    try:
        busy = float(os.environ.get(BUSY_TIMEOUT_ENV) or BUSY_TIMEOUT_S)
        return Workspace(path, busy_timeout=busy, actor=actor())  # every write acts as this UI's user
    except WorkspaceBusyError as error:
        said: dict[str, object] = st.session_state.setdefault("_reads", {})
        if "busy" not in said:  # once per run, however many parts of the page ask
            said["busy"] = True
            st.warning(
                f"The workspace is busy: another process is writing to it. {error.hint}.",
                icon=":material/hourglass_empty:",
            )
        return None
    except NotFoundError:
        st.title("Runsheet")
        st.info(f"There is no workspace at `{path}` yet.")
        st.markdown(f"Create one from a terminal with `runsheet init {path}`, or here:")
        if st.button("Create the workspace", type="primary", key="create-workspace"):
            with friendly():
                Workspace.init(path)
                st.rerun()
        return None


def choose_campaign(name: str) -> None:
    """Make `name` the chosen campaign from the next run on (the sidebar's widget is already drawn in this one)."""
    st.session_state["_next_campaign"] = name


def prepare_campaign_choice(names: list[str]) -> None:
    """Before the sidebar draws its picker: apply a pending choice, else the URL's, else keep a valid one."""
    wanted = st.session_state.pop("_next_campaign", None) or st.session_state.get("campaign")
    if wanted not in names:
        wanted = st.query_params.get("campaign")
    if wanted not in names:
        wanted = names[0] if names else None
    st.session_state["campaign"] = wanted
    if wanted:
        st.query_params["campaign"] = wanted


def open_campaign(ws: Workspace, name: str) -> Campaign:
    return ws.campaign(name, actor=actor(), trigger="ui")


def notify(message: str, icon: str = "✅") -> None:
    """A message shown once, after the rerun an action causes."""
    st.session_state.setdefault("_notices", []).append((message, icon))


def show_notices() -> None:
    shown = st.session_state.pop("_notices", [])
    st.session_state["_notices_shown"] = shown
    for message, icon in shown:
        st.toast(message, icon=icon)


def rerun_keeping_notices() -> NoReturn:
    """`st.rerun`, with this run's notices shown again by the next: toasts drawn by a run that a rerun cuts short
    are lost with it (a warm click's run can end while the grid is drawn, which reruns at once)."""
    st.session_state.setdefault("_notices", [])[:0] = st.session_state.pop("_notices_shown", [])
    st.rerun()


@contextmanager
def friendly(what: str = "") -> Iterator[None]:
    """Run a block; a user error shows as one line with its fix, a busy workspace as a warning, anything else as
    a short apology (the traceback goes to the server log, not the page)."""
    prefix = f"{what}: " if what else ""
    try:
        yield
    except WorkspaceBusyError as error:
        st.warning(
            f"{prefix}the workspace is busy: another process is writing to it. {error.hint}.",
            icon=":material/hourglass_empty:",
        )
    except PermissionDeniedError as error:  # the role's limit, and who can lift it (the refusal is logged)
        st.error(f"{prefix}{error.message} — {hint_of(error)}.", icon="🔒")
    except RunsheetError as error:
        hint = f" — {error.hint}" if error.hint else ""
        st.error(f"{prefix}{error.message}{hint}", icon="⚠️")
    except Exception as error:  # an engine bug: say so plainly, keep the page alive
        if _is_streamlit_control_flow(error):
            raise
        log.exception("UI action failed")
        st.error(f"{prefix}something went wrong ({type(error).__name__}: {str(error)[:200]})", icon="⚠️")


def hint_of(error: RunsheetError) -> str:
    """An error's fix as the UI says it: a refusal's names logging in, not the CLI's `--as`."""
    return error.hint_for("ui") if isinstance(error, PermissionDeniedError) else error.hint


def _is_streamlit_control_flow(error: Exception) -> bool:
    # st.rerun / st.stop / st.switch_page raise exceptions that must reach Streamlit.
    return type(error).__module__.startswith("streamlit.")
