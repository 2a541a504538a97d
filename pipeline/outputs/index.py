"""`index.csv` and `index.jsonl` at the output's root: every job the output has, rebuilt from the journal.

Written at the end of every run, whatever the engine or shard: the journal holds every run's and
every shard's lines, so the index built from it covers them all (a shard that finishes last writes
the whole index; `modomo index OUT` rebuilds it at any time). One row per result: per job and style
(the latest line winning), one row per variation, best first; per result file the latest job that
wrote it. The CSV is meant for spreadsheets:
UTF-8 with a byte-order mark, every text cell quoted, and a cell that a spreadsheet would run as a
formula (starting with =, +, -, @, a tab or a carriage return) prefixed with a quote. Columns are only ever
added at the end (`set`, `style_ref`, `original_url`, then a declutter's `objects_left`, `movable_left` and
`seam_delta_e`, then `mode`, then a staging's `furniture_added`, `openings_added` and `architecture_edges_f1`
came last), so a sheet that reads them by position keeps working.
"""

from __future__ import annotations

import csv
import io
import json
import math

from pipeline.outputs.journal import Journal
from pipeline.outputs.records import ImageRecord

COLUMNS = (
    "input",
    "style",
    "variation",
    "room",
    "room_probability",
    "status",
    "error",
    "result",
    "thumbnail",
    "result_url",
    "thumbnail_url",
    "seed",
    "quality",
    "passed",
    "edges_f1",
    "depth_rmse",
    "kept_delta_e_max",
    "kept_delta_e_mean",
    "settings",
    "finished",
    "manifest_line",
    "id",
    "original",
    "set",
    "style_ref",
    "original_url",
    "objects_left",
    "movable_left",
    "seam_delta_e",
    "mode",
    "furniture_added",
    "openings_added",
    "architecture_edges_f1",
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def latest_jobs(entries: list[dict]) -> list[dict]:
    """The latest line of each (job, style), in the order of those lines; a job whose result file a later job
    wrote over (an edited manifest row) is dropped."""
    latest: dict[tuple[str, str], dict] = {}
    for entry in entries:
        latest.pop((entry["id"], entry.get("style")), None)  # re-insert: order follows the latest line
        latest[(entry["id"], entry.get("style"))] = entry
    owner: dict[str, tuple[str, str]] = {}
    for key, entry in latest.items():
        result = entry.get("outputs", {}).get("result")
        if result:
            owner[result] = key
    return [
        entry
        for key, entry in latest.items()
        if not entry.get("outputs", {}).get("result") or owner[entry["outputs"]["result"]] == key
    ]


def rows(entries: list[dict]) -> list[dict]:
    """One row per result: per (job, style) its latest line, one row per variation, best first; manifest jobs
    in the manifest's order, a row's styles in the row's order (the others as their lines came)."""

    def place(record: ImageRecord) -> tuple:
        line = record.line
        return (line, record.order or 0) if isinstance(line, int) else (math.inf, 0)

    jobs = sorted((ImageRecord.from_entry(entry) for entry in latest_jobs(entries)), key=place)
    return [row(job, variation) for job in jobs for variation in job.variations or [None]]


def row(job: ImageRecord, variation: dict | None) -> dict:
    """One result of a job (its record, paths relative to the output): the job's columns, and its variation's
    number, files, seed and score."""
    result = variation if variation is not None else {
        "outputs": job.outputs, "seed": job.seed, "quality": job.quality, "passed": job.passed,
        "fidelity": job.fidelity, **job.urls,
    }  # fmt: skip
    outputs, urls = result.get("outputs", {}), result
    return {
        "input": job.input,
        "style": job.style,
        "variation": variation.get("n") if variation is not None else (1 if outputs.get("result") else None),
        "room": job.room,
        "room_probability": job.room_probability,
        "status": job.status,
        "error": job.error,
        "result": outputs.get("result"),
        "thumbnail": outputs.get("thumbnail"),
        "result_url": urls.get("transformed_url"),
        "thumbnail_url": urls.get("thumbnail_url"),
        "seed": result.get("seed"),
        "quality": result.get("quality"),
        "passed": result.get("passed"),
        **fidelity_cells(result.get("fidelity") or {}),
        "settings": job.settings,
        "finished": job.finished,
        "manifest_line": job.line,
        "id": job.id,
        # The unaltered original that disclosure rules ask to link: the published copy (--publish-originals, its
        # path in the output), else the source photo's path or URL.
        "original": job.outputs.get("original") or job.input,
        # Last, as the columns were added: the room set, and the style reference as the user named it (a set
        # member's is its anchor's key). Empty for jobs without them.
        "set": job.set,
        "style_ref": job.reference.get("source"),
        "original_url": job.urls.get("original_url"),
        **declutter_cells(result.get("fidelity") or {}),  # last, as they were added
        "mode": job.mode or ("declutter" if job.style == "empty" else "restyle"),  # lines before it was kept
        **stage_cells(result.get("fidelity") or {}),
    }


def stage_cells(fidelity: dict) -> dict:
    """What a staging made (pipeline.stages.stage_check) as index columns: the share of its region that became
    furniture, the share that became a window or door, the architecture's edge F1; empty for other modes."""
    added = fidelity.get("furniture_added") or {}
    return {
        "furniture_added": added.get("share"),
        "openings_added": fidelity.get("openings_added"),
        "architecture_edges_f1": fidelity.get("architecture_edges_f1"),
    }


def fidelity_cells(fidelity: dict) -> dict:
    """A result's fidelity (pipeline.stages.fidelity) as index columns; empty where it was not measured."""
    kept = fidelity.get("kept_delta_e") or {}
    return {
        "edges_f1": fidelity.get("edges_f1"),
        "depth_rmse": fidelity.get("depth_rmse"),
        "kept_delta_e_max": kept.get("max"),
        "kept_delta_e_mean": kept.get("mean"),
    }


def declutter_cells(fidelity: dict) -> dict:
    """What a declutter left (pipeline.stages.declutter_check) as index columns: objects found inside what was taken
    out, the share of it the scene calls movable, the seam's mean CIEDE2000; empty for a restyle."""
    seam = fidelity.get("seam_delta_e") or {}
    return {
        "objects_left": fidelity.get("objects_left"),
        "movable_left": fidelity.get("movable_left"),
        "seam_delta_e": seam.get("mean"),
    }


def safe_cell(value) -> str | float | int:
    """A CSV cell a spreadsheet shows as written: numbers as numbers, text never run as a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def to_csv(table: list[dict]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in table:
        writer.writerow([safe_cell(row.get(c)) for c in COLUMNS])
    return buffer.getvalue().encode("utf-8-sig")


def to_jsonl(table: list[dict]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in table).encode("utf-8")


def write_index(sink, entries: list[dict] | None = None) -> dict:
    """Rebuild index.csv and index.jsonl from the output's journal (each written whole or not at all); `entries`:
    its lines when the caller has read them already."""
    table = rows(Journal(sink).entries() if entries is None else entries)
    csv_path = sink.write("index.csv", to_csv(table), "text/csv; charset=utf-8")
    jsonl_path = sink.write("index.jsonl", to_jsonl(table), "application/x-ndjson")
    jobs = {(r["id"], r["style"]): r["status"] for r in table}
    counts = {status: sum(s == status for s in jobs.values()) for status in ("ok", "failed")}
    return {
        "csv": csv_path,
        "jsonl": jsonl_path,
        "jobs": len(jobs),
        "results": sum(bool(r["result"]) for r in table),
        **counts,
    }
