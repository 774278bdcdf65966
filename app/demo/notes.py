"""Demo MCP server keeping notes in memory: state that changes between calls.

The notes live as long as the process and are shared by all its sessions.
Run: `python -m app.demo.notes [--transport stdio|http|ws] [--host H] [--port N]`.
"""

from __future__ import annotations

from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ResourceError, ToolError

from app.demo.runner import main

DEFAULT_PORT = 8002

mcp = FastMCP("notes", instructions="A scratch pad: add notes by title and read them back.", log_level="WARNING")
notes: dict[str, str] = {}


@mcp.tool()
def add_note(title: str, body: str) -> str:
    """Add a note, or replace the note with the same title."""
    replaced = title in notes
    notes[title] = body
    return f"{'Updated' if replaced else 'Added'} note {title!r}"


@mcp.tool()
def list_notes() -> list[str]:
    """Titles of all notes, oldest first."""
    return list(notes)


@mcp.tool()
def get_note(title: str) -> str:
    """The body of one note."""
    if title not in notes:
        raise ToolError(f"No note titled {title!r}")
    return notes[title]


@mcp.resource("notes://{title}", mime_type="text/plain")
def note(title: str) -> str:
    """A note as a resource, for clients that attach context by URI."""
    if title not in notes:
        raise ResourceError(f"No note titled {title!r}")
    return notes[title]


@mcp.prompt()
def summarize_notes() -> str:
    """Ask the model to summarise every note."""
    if not notes:
        return "There are no notes yet. Say so, and suggest adding one with the add_note tool."
    listing = "\n\n".join(f"## {title}\n{body}" for title, body in notes.items())
    return f"Summarise these notes in a short bulleted list:\n\n{listing}"


if __name__ == "__main__":
    main(mcp, default_port=DEFAULT_PORT)
