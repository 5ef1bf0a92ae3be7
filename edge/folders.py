"""Output folders created with an error that says what stands in the way.

``Path.mkdir`` names only the path it was given ("Not a directory: 'a/b/c'")
when the trouble is a file further up ("a"). Every command that writes a
folder creates it here instead and fails in one line naming both. No OpenCV
here: ``trainer.portable`` uses it on machines that lack it.
"""

from __future__ import annotations

from pathlib import Path

from edge.errors import SinkError


def make_folder(folder: Path | str, what: str) -> Path:
    """Create ``folder`` and its parents (a folder already there is fine) and return it; a failure
    is one ``SinkError``: "cannot write <what>: <why>", the why naming a file in the way."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SinkError(f"cannot write {what}: {why_not_a_folder(folder, error)}") from None
    return folder


def why_not_a_folder(folder: Path, error: OSError) -> str:
    """Why ``folder`` could not be created: the file on its path, where one is, else the system's reason."""
    blocking = next((path for path in (folder, *folder.parents) if path.exists() and not path.is_dir()), None)
    return f"{blocking} is a file, not a folder" if blocking is not None else str(error.strerror or error)
