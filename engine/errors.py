"""Errors a user can cause, each carrying the fix.

    RunsheetError                 anything a user can cause; `.hint` says how to fix it
    ├── SpecError                 a campaign spec is refused as a whole (`.column` names the culprit)
    │   ├── CycleError            the columns depend on each other in a loop (`.path`)
    │   └── SpecConflictError     a spec file would undo changes made elsewhere since it was applied (`.diff`)
    ├── EditError                 an edit (set, pin) that cannot be applied; nothing was changed
    ├── NotFoundError             a workspace, campaign, column or row that does not exist
    ├── ImportError_              a file that cannot be loaded; nothing was imported
    ├── ExportError               an export that cannot be written; no file was created or changed
    ├── QueryError                SQL the read-only sandbox refused, or stopped at its time or memory limit
    ├── WorkspaceBusyError        another process held the workspace for longer than the retry budget
    ├── PermissionDeniedError     the acting user's role does not allow the action (it is logged)
    └── LoginError                a UI login refused: wrong user name or password, unknown token

Failures inside a cell are not exceptions: they are cell states (status, error code, hint).
Anything else that raises is an engine bug.
"""

from __future__ import annotations

from typing import Literal


class RunsheetError(Exception):
    """Base of every error a user can cause. `str(err)` is one line: what is wrong, then the fix."""

    def __init__(self, message: str, hint: str = "") -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} ({hint})" if hint else message)


class SpecError(RunsheetError):
    """A campaign spec that is refused as a whole; `column` names the offending column, if any."""

    def __init__(self, message: str, hint: str = "", column: str | None = None) -> None:
        self.column = column
        prefix = f"column '{column}': " if column else ""
        super().__init__(prefix + message, hint)


class CycleError(SpecError):
    """Columns whose dependencies form a loop; `path` walks the loop and returns to its start."""

    def __init__(self, path: list[str]) -> None:
        self.path = path
        # path[i + 1] reads path[i]: breaking any edge breaks the loop; name the first one.
        super().__init__(
            "dependency cycle " + " -> ".join(path),
            hint=f"remove {path[0]} from the inputs of {path[1]}",
            column=path[1],
        )


class SpecConflictError(SpecError):
    """Applying a spec file would undo changes made since the campaign's spec was last applied from a file (in
    the UI, the API, an import); `undone` names them and `diff` shows what the apply would change. Nothing was
    changed: `force` applies it anyway."""

    def __init__(self, message: str, hint: str, *, undone: list[str], diff: str) -> None:
        self.undone = undone
        self.diff = diff
        super().__init__(message, hint)


class EditError(RunsheetError):
    """An edit that cannot be applied; the workspace is left unchanged."""


class NotFoundError(RunsheetError):
    """A workspace, campaign, column or row that does not exist."""


class ImportError_(RunsheetError):
    """A file that cannot be loaded into a campaign; nothing was imported."""


class ExportError(RunsheetError):
    """An export that cannot be written; no file was created or changed."""


class QueryError(RunsheetError):
    """SQL that the sandbox refused (a write, a file, a setting) or that failed, ran out of time or memory."""


class WorkspaceBusyError(RunsheetError):
    """Another process kept the workspace locked for longer than the retry budget."""


class PermissionDeniedError(RunsheetError):
    """The acting user's role does not allow the action; the refusal is in the activity log. Who acts is told
    differently on each face, so `hint_for(face)` words the fix for the CLI (`--as` / RUNSHEET_USER), the API
    (a token) and the UI (log in); `hint` is the CLI's."""

    def __init__(
        self, message: str, hint: str = "", *, actor: str = "", needs: str = "", who_may: tuple[str, ...] = ()
    ) -> None:
        self.actor = actor
        self.needs = needs  # the least role allowed
        self.who_may = who_may  # users whose role allows it, admins first
        super().__init__(message, hint or self.hint_for("cli"))

    def hint_for(self, face: Literal["cli", "api", "ui"]) -> str:
        """The fix, said for the face the actor came through."""
        names = ", ".join(self.who_may[:3]) + (", …" if len(self.who_may) > 3 else "")
        first = self.who_may[0] if self.who_may else "NAME"
        who = f" ({names})" if names else ""
        role = self.needs or "ROLE"
        a_role = f"{'an' if role == 'admin' else 'a'} {role}"
        if face == "api":
            return (
                f"send the token of a user who may{who}: `runsheet token create {first}`; or have an admin make "
                f"{self.actor or 'this user'} {a_role}: `runsheet users set {self.actor or 'NAME'} {role}`"
            )
        if face == "ui":
            return (
                f"log in as a user who may{who}: Log out in the sidebar, then log in; or ask an admin to change "
                "your role (Settings → People and roles)"
            )
        return (
            f"act as a user who may{who}: `--as {first}` or RUNSHEET_USER={first}; or have an admin make "
            f"{self.actor or 'this user'} {a_role}: `runsheet users set {self.actor or 'NAME'} {role} --as {first}`"
        )


class LoginError(RunsheetError):
    """A login the workspace refused (wrong user name or password, unknown token); nothing was changed."""
