"""Per-image verdicts and result files (CSV, JSON) for classified images.

A record is one image in exactly the shape `fasdesk classify --json` prints
(`batch.ImageResult.to_json()`: path, width, height, faces, error).
The JSON export writes those records (the GUI's add, through `with_run`, each image's
verdict and the model id, SHA-256 and threshold that judged it); the CSV export flattens
them to one row per face (an image without faces, or one that could not be read, still
gets one row with the face columns empty), so both files always describe the same images.
"""
from __future__ import annotations

import csv
import json
import io
import os
from dataclasses import replace
from pathlib import Path
from typing import Iterable, Sequence

from fasdesk.core.io.files import write_atomic
from fasdesk.core.decision.verdict import REAL, SPOOF, UNSURE
from fasdesk.core.inference.pipeline import FaceResult

NO_FACE, ERROR = "no face", "error"

CSV_FIELDS = ("path", "width", "height", "face", "x", "y", "w", "h", "detector_score",
              "p_real", "label", "reason", "error")
# What judged the rows, written with every export (CSV columns, JSON keys per record).
RUN_FIELDS = ("verdict", "model", "model_sha256", "threshold")
VERDICTS = (REAL, SPOOF, UNSURE, NO_FACE, ERROR)


def relative_name(path: str, roots: Iterable[str]) -> str:
    """`path` as seen from the dropped folder it was found in (the deepest one that holds
    it), else its file name."""
    best = None
    for root in roots:
        try:
            rel = os.path.relpath(path, root)
        except ValueError:  # another drive
            continue
        if not rel.startswith(".." + os.sep) and rel != ".." and (best is None or len(rel) < len(best)):
            best = rel
    return (best or Path(path).name).replace(os.sep, "/")


def display_name(text: str) -> str:
    """A file name or path as one printable line: control characters (a newline in a
    name) shown as escapes like \\n, and bytes that are not UTF-8 (held as surrogates
    by Python) as \\xNN, so any name the OS allows shows on one row."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the raw byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def relabelled(faces: Sequence[FaceResult], threshold: float) -> list[FaceResult]:
    """Copies of `faces` labelled under `threshold` (stored p_real, no new inference)."""
    return [replace(face, label=face.relabel(threshold)) for face in faces]


def image_verdict(labels: Iterable[str], error: str | None = None) -> str:
    """One word for a whole image from its faces' labels: any spoof face makes it
    "spoof"; "real" needs at least one judged face and all judged faces real; only
    unjudged faces give "unsure"."""
    if error:
        return ERROR
    labels = set(labels)
    if not labels:
        return NO_FACE
    if SPOOF in labels:
        return SPOOF
    if REAL in labels:
        return REAL
    return UNSURE


def csv_rows(records: Iterable[dict]) -> Iterable[dict]:
    """CSV rows (dicts keyed by CSV_FIELDS): one per face, at least one per image."""
    for record in records:
        image = {"path": record["path"], "width": record["width"],
                 "height": record["height"], "error": record["error"] or ""}
        if not record["faces"]:
            yield {**{key: "" for key in CSV_FIELDS}, **image}
        for index, face in enumerate(record["faces"]):
            x, y, w, h = face["box"]
            yield {**image, "face": index, "x": x, "y": y, "w": w, "h": h,
                   "detector_score": face["detector_score"],
                   "p_real": "" if face["p_real"] is None else face["p_real"],
                   "label": face["label"], "reason": face["reason"] or ""}


def _write_atomically(path, write) -> None:
    """Render through `write(text handle)` in memory, then replace the file in one step."""
    buffer = io.StringIO(newline="")
    write(buffer)
    # surrogateescape: a file name that is not UTF-8 is written back as its own bytes
    # (strict UTF-8 would raise on it and the export would fail).
    write_atomic(path, buffer.getvalue().encode("utf-8", "surrogateescape"))


def with_run(records: Sequence[dict], threshold: float, model: str = "",
             model_sha256: str = "") -> list[dict]:
    """The records with each one's verdict under `threshold` and what judged it (the
    model id, its SHA-256, the threshold): an export says how it was made."""
    out = []
    for record in records:
        labels = (face["label"] for face in record["faces"])
        out.append({**record, "verdict": image_verdict(labels, record.get("error")),
                    "model": model, "model_sha256": model_sha256, "threshold": threshold})
    return out


def write_csv(path, records: Sequence[dict]) -> None:
    """One row per face; records made by `with_run` add its columns to every row."""
    records = list(records)
    run = [k for k in RUN_FIELDS if records and k in records[0]]

    def write(handle):
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS + tuple(run))
        writer.writeheader()
        for record in records:
            extra = {k: record[k] for k in run}
            writer.writerows({**row, **extra} for row in csv_rows([record]))

    _write_atomically(Path(path), write)


def write_json(path, records: Sequence[dict]) -> None:
    """A `.jsonl` file gets one record per line (like `classify --json`); else a JSON array."""
    path = Path(path)

    def write(handle):
        if path.suffix.lower() == ".jsonl":
            for record in records:
                handle.write(json.dumps(record) + "\n")
        else:
            json.dump(list(records), handle, indent=1)
            handle.write("\n")

    _write_atomically(path, write)
