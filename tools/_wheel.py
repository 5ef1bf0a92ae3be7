"""Download a wheel from PyPI with pip, without installing it (shared by the fetch_* tools)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def download_wheel(
    requirement: str, directory: Path, *, python_version: str | None = None, platform: str | None = None
) -> Path:
    """Download (never install) the wheel pinned by ``requirement`` ("name==version") into ``directory``.

    ``python_version`` and ``platform`` pick a wheel for another interpreter or
    machine than this one. Returns the wheel's path.
    """
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    if python_version:
        command += ["--python-version", python_version]
    if platform:
        command += ["--platform", platform]
    command += ["--dest", str(directory), requirement]
    subprocess.run(command, check=True)
    name = re.split(r"[=<>!~ ]", requirement, maxsplit=1)[0]
    wheel_name = re.sub(r"[-_.]+", "_", name)  # how wheel file names spell the project
    wheels = sorted(Path(directory).glob(f"{wheel_name}-*.whl"))
    if not wheels:
        raise SystemExit(f"pip did not produce a {name} wheel in {directory}")
    return wheels[0]
