"""`runsheet --help` and `runsheet` alone, shown without typer or rich (issue 16).

The overview is the first thing a person types, and importing typer and rich to draw it costs twice the target
(typer's help imports rich.markdown, rich.traceback and pygments: 0.2 s of a 0.33 s `--help`). Here it is drawn
from LISTED, the commands with their one-line help, in the same boxes, wrapping and colours as typer's rich help
(typer 0.29, rich 15): tests/cli/test_overview.py renders both at every width from MIN_WIDTH to 220 columns and
fails on any character or colour that differs, and on any command or help line LISTED lacks or has too many.

`show` draws it only in the ordinary case and declines (None) otherwise: a terminal narrower than MIN_WIDTH (not
compared: rich squeezes narrow tables its own way), an output that is not UTF-8 (rich's boxes become ASCII),
Windows (its legacy console), a `python -m` start (its usage line names the module), a long script name, or any
environment variable that changes how rich draws (colour forced or barred, a fixed width, a dumb terminal). Typer
then shows the help as before. Each command's own help
(`runsheet run --help`) and every usage error still go through typer.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
from collections.abc import Iterator

SUMMARY = "Runsheet: reactive campaign tables."
# Each command and command group in the order typer lists them, with the first paragraph of its help as typer
# shows it (rich markup mode keeps single line breaks).
LISTED = (
    ("settings", "Show the workspace settings, or change one: `runsheet settings concurrency 32`."),
    ("init", "Create a workspace folder (kept as it is if it exists)."),
    (
        "apply",
        "Create or update a campaign from its spec; changed steps and their downstream become stale. Nothing that\n"
        "holds data is dropped unless pruned; new paid steps start paused. A file that would undo changes made in the\n"
        "UI or the API since the last file was applied is refused (with the diff) unless --force.",
    ),
    ("set", "Edit one cell. Editing an input recomputes its row's downstream; editing a step cell pins it."),
    (
        "save",
        "Save to Record: copy a step cell's current value into a field of the record, so later steps use it as\n"
        "context. It is an input edit: the row's downstream recomputes.",
    ),
    (
        "confirm",
        "Confirm a step cell edited by hand: it stays pinned, and exports downstream (which wait on unconfirmed\n"
        "edits) may now send it. Editing it again makes it unconfirmed.",
    ),
    (
        "show",
        "Show a page of the grid with each cell's state: every row, or those --rows and --where pick (the\n"
        "condition runs in the read-only SQL sandbox, over the campaign's table as `runsheet query` sees it).",
    ),
    ("status", "Count each step column's cells by state."),
    ("campaigns", "List the workspace's campaigns: rows, and whether the campaign or some of its steps are paused."),
    (
        "import",
        "Load records into a campaign in one transaction. New file columns become input columns; with --key,\n"
        "matching records are updated and only changed inputs recompute downstream (paid steps are queued).",
    ),
    ("export", "Write a campaign's values to a CSV or Parquet file, atomically (row_id first)."),
    (
        "query",
        "Run read-only SQL in the sandbox: each campaign is a table named after it; `cells` has every step\n"
        "cell's status, error, credits and timing; `runs` and `activity` are the logs.",
    ),
    ("log", "List runs, newest first: trigger, actor, scope, outcomes, credits, duration and progress."),
    ("run", "Compute cells: by default every auto-run step's empty, stale and queued cells, AI steps included."),
    ("stop", "Stop a running run: calls in flight are cancelled and nothing new starts."),
    ("runs", "List the latest runs with their progress, credits and outcome."),
    ("serve", "Serve the HTTP API (records in, runs, stop; docs at /docs) and run due schedules."),
    (
        "pause",
        "Pause a campaign (its paid steps) or one step: asked to run, its cells keep what they hold (empty ones show\n"
        "paused).",
    ),
    (
        "resume",
        "Resume a paused campaign or step, then run what was accepted while paused (its queued auto-run cells,\n"
        "records that came in), like `runsheet run`, unless --no-run.",
    ),
    ("ui", "Open the grid in a browser: serves the Streamlit UI for the workspace on http://127.0.0.1:PORT."),
    ("context", "Global context documents (brand brief, ICP, offer...) that AI steps read."),
    ("credits", "The workspace's credit balance."),
    ("action", "The action library: named, described steps run on one record (or added to a campaign)."),
    ("copilot", "Copilot: continue a result in a chat; save a reply to the record or use it as the cell's value."),
    ("history", "The history (activity, export deliveries) of columns removed from a campaign."),
    ("users", "Who may do what: admin, member (run, edit inputs), viewer (read)."),
    ("token", "API tokens for `runsheet serve` (each acts as a user)."),
    ("schedule", "Runs on a cron expression or an interval, inside `runsheet serve`."),
    ("spec", "A campaign's spec: its history of changes, and the live spec as YAML."),
)
MIN_WIDTH = 60
# Variables that change how typer or rich draw the help (colour, width, terminal); with any of them set, typer draws.
RICH_ENVIRONMENT = (
    "FORCE_COLOR",
    "PY_COLORS",
    "GITHUB_ACTIONS",
    "NO_COLOR",
    "TTY_COMPATIBLE",
    "TTY_INTERACTIVE",
    "TERMINAL_WIDTH",
    "TYPER_USE_RICH",
    "_TYPER_FORCE_DISABLE_TERMINAL",
    "JUPYTER_COLUMNS",
)

# typer's styles as SGR codes (bold 1, dim 2, then a colour), and its option highlighter's patterns in its order.
BOLD, BORDER, COMMAND = "1", "2", "1;36"
_HIGHLIGHTS = (
    (re.compile(r"(^|\W)(?P<s>\-\w+)(?![a-zA-Z0-9])"), "32", True),  # a switch: bold green
    (re.compile(r"(^|\W)(?P<s>\-\-[\w\-]+)(?![a-zA-Z0-9])"), "36", True),  # an option: bold cyan
    (re.compile(r"(?P<s>\<[^\>]+\>)"), "33", True),  # a type: bold yellow
    (re.compile(r"(?P<s>Usage: )"), "33", False),  # yellow
)
_WORD = re.compile(r"\s*\S+\s*")

Styled = list[tuple[str, str]]  # runs of (text, SGR codes); "" is unstyled


def show(args: list[str]) -> int | None:
    """Print the overview for `runsheet --help` (exit code 0) or `runsheet` alone (2, as typer exits); None when
    this is not the ordinary case and typer must draw it."""
    if args not in ([], ["--help"]) or os.name == "nt" or any(name in os.environ for name in RICH_ENVIRONMENT):
        return None
    if os.environ.get("TERM", "").lower() in ("dumb", "unknown") or getattr(
        sys.modules.get("__main__"), "__package__", None
    ):
        return None
    if not (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "").startswith("utf"):
        return None
    width, prog = terminal_width(), os.path.basename(sys.argv[0])
    if width < MIN_WIDTH or len(prog) > MIN_WIDTH // 3:  # a long name could push the usage line past the width
        return None
    sys.stdout.write(render(width, colour=sys.stdout.isatty(), prog=prog))
    if args:
        sys.stdout.write("\n")  # typer echoes the (already printed) help: one empty line more
    sys.stdout.flush()
    return 0 if args else 2


def terminal_width() -> int:
    """The width rich gives its console: $COLUMNS, else the first standard stream's terminal, else 80."""
    columns = os.environ.get("COLUMNS")
    if columns is not None and columns.isdigit():
        return int(columns)
    for descriptor in (0, 1, 2):
        try:
            return os.get_terminal_size(descriptor).columns or 80
        except (AttributeError, ValueError, OSError):
            continue
    return 80


def render(width: int, *, colour: bool, prog: str = "runsheet") -> str:
    """The overview `width` columns wide, as typer's rich help draws it (with ANSI colours when `colour`)."""
    lines: list[Styled] = []
    blank = [(" " * width, BOLD)]
    usage = highlight(f"Usage: {prog} [OPTIONS] COMMAND [ARGS]...", BOLD)
    lines += [blank, [(" ", BOLD), *pad(usage, width - 2, BOLD), (" ", BOLD)], blank]
    lines += [[(" ", ""), *text, (" ", "")] for text in wrapped(SUMMARY, width - 2)]
    lines.append([(" " * width, "")])
    inner = width - 4
    option = [*highlight("--help", BOLD), (" " * 8, ""), ("<", "1;2;33"), ("bool", "1;33"), (">", "1;2;33")]
    lines += panel("Options", [pad([*option, ("  Show this message and exit.", "")], inner)], width)
    name_width = max(len(name) for name, _ in LISTED)
    rows: list[Styled] = []
    for name, help_ in LISTED:
        for index, text in enumerate(wrapped(help_, inner - name_width - 2)):
            shown = name if index == 0 else ""
            rows.append([(shown.ljust(name_width + 1), COMMAND), (" ", ""), *text])
    lines += panel("Commands", rows, width)
    return "".join(_ansi(line) if colour else "".join(text for text, _ in line) + "\n" for line in lines)


def panel(title: str, rows: list[Styled], width: int) -> list[Styled]:
    """Rows (each `width` - 4 wide) in a rounded box titled at its top left, as rich's Panel draws it."""
    top = [("╭─", BORDER), (f" {title} ", BORDER), ("─" * (width - len(title) - 5) + "╮", BORDER)]
    body = [[("│", BORDER), (" ", ""), *row, (" ", ""), ("│", BORDER)] for row in rows]
    return [top, *body, [("╰" + "─" * (width - 2) + "╯", BORDER)]]


def wrapped(text: str, width: int) -> Iterator[Styled]:
    """`text` highlighted, each of its lines word-wrapped to `width` as rich wraps it, each piece padded."""
    styled = highlight(text, "")
    start = 0
    for line in text.split("\n"):
        bounds = [0, *_breaks(line, width), len(line)]
        for first, last in itertools.pairwise(bounds):
            yield pad(_slice(styled, start + first, start + min(last, first + width)), width)
        start += len(line) + 1


def _breaks(line: str, width: int) -> list[int]:
    """Where rich's `divide_line` breaks `line` to fit `width`: before a word that does not fit, and inside a word
    longer than a whole line (folded)."""
    breaks: list[int] = []
    offset = 0
    for match in _WORD.finditer(line):
        start, word = match.start(), match.group(0)
        length = len(word.rstrip())
        if width - offset >= length:
            offset += len(word)
        elif length > width:
            chunks = [word[i : i + width] for i in range(0, len(word), width)]
            for chunk in chunks:
                if start:
                    breaks.append(start)
                start += len(chunk)
            offset = len(chunks[-1])
        elif offset and start:
            breaks.append(start)
            offset = len(word)
    return breaks


def highlight(text: str, base: str) -> Styled:
    """`text` in the style `base` with typer's option highlighter applied: bold adds up, a later colour wins."""
    colours: list[str] = [""] * len(text)
    bold = [base == BOLD] * len(text)
    for pattern, colour, bolden in _HIGHLIGHTS:
        for match in pattern.finditer(text):
            for i in range(*match.span("s")):
                colours[i] = colour
                bold[i] = bold[i] or bolden
    runs: Styled = []
    for i, char in enumerate(text):
        codes = ";".join(code for code in ("1" if bold[i] else "", colours[i]) if code)
        if runs and runs[-1][1] == codes:
            runs[-1] = (runs[-1][0] + char, codes)
        else:
            runs.append((char, codes))
    return runs


def pad(text: Styled, width: int, style: str = "") -> Styled:
    length = sum(len(part) for part, _ in text)
    return [*text, (" " * (width - length), style)] if length < width else text


def _slice(text: Styled, first: int, last: int) -> Styled:
    found: Styled = []
    position = 0
    for part, style in text:
        begin, end = max(first - position, 0), min(last - position, len(part))
        if begin < end:
            found.append((part[begin:end], style))
        position += len(part)
    return found


def _ansi(line: Styled) -> str:
    return "".join(f"\x1b[{style}m{text}\x1b[0m" if style else text for text, style in line) + "\n"
