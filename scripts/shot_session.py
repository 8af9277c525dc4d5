"""What the screenshot scripts share: their command line (`[OUT_DIR] [--docs]`) and a
throw-away user folder, so a run never touches the real settings, models or datasets."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT  # samples/ and models/ come with the project


def start(argv: list[str], name: str) -> tuple[Path, bool, Path]:
    """(output folder, whether --docs was given, scratch folder) for a script run; points
    the user data and config folders into the scratch folder. Call before importing fasdesk."""
    docs = "--docs" in argv
    args = [a for a in argv if a != "--docs"]
    out = Path(args[0] if args else "screenshots").resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"fasdesk-{name}-shots-"))
    os.environ["XDG_DATA_HOME"] = str(work / "data")
    os.environ["XDG_CONFIG_HOME"] = str(work / "config")
    return out, docs, work
