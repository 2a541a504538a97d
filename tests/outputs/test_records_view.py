"""One record of a job: the summary's record, the journal line and the index's rows are views of the same
`ImageRecord`, and writing a job reads its frames without changing them."""

from __future__ import annotations

import json
import shutil

import numpy as np

from pipeline.frames import Frame
from pipeline.outputs import writer as writer_module
from pipeline.outputs.index import rows
from pipeline.outputs.records import ImageRecord
from pipeline.outputs.sinks import LocalSink
from tests.conftest import restyle


def state(frame: Frame) -> dict:
    """What of a frame a writer might change: its status, numbers, and its pictures (by content)."""
    return {
        "error": frame.error,
        "seed": frame.seed,
        "quality": frame.quality,
        "room": frame.room,
        "variation": frame.variation,
        "fields": sorted(vars(frame)),
        "result": None if frame.result is None else np.asarray(frame.result).tobytes(),
        "pictures": [getattr(frame, name) is not None for name in ("image", "result", "depth", "edges", "source")],
        "timings": dict(frame.timings),
        "attempts": list(frame.attempts),
    }


def test_writing_leaves_the_frames_as_they_were(tiny_bundle, rooms, tmp_path, monkeypatch):
    real, seen = writer_module.OutputWriter.write, []

    def write(self, frames, run):
        before = [state(f) for f in frames]
        record = real(self, frames, run)
        seen.append((before, [state(f) for f in frames], record))
        return record

    monkeypatch.setattr(writer_module.OutputWriter, "write", write)
    photo = tmp_path / "room.jpg"
    shutil.copy(rooms / "living-room-02-small.jpg", photo)
    restyle(tiny_bundle, photo, tmp_path / "out", "--variations", "2", "--style", "boho,modern")
    assert len(seen) == 2 and all(record.ok for _, _, record in seen)
    for before, after, _ in seen:
        assert before == after  # the frames are read; what was written is the record's


def test_the_journal_line_index_rows_and_summary_are_views_of_one_record(tiny_bundle, rooms, tmp_path):
    photo = tmp_path / "room.jpg"
    shutil.copy(rooms / "living-room-02-small.jpg", photo)
    out = tmp_path / "out"
    summary = restyle(tiny_bundle, photo, out, "--variations", "2")
    sink = LocalSink(out)
    (line,) = [json.loads(text) for text in (out / ".modomo" / "journal.jsonl").read_text().splitlines()]
    record = ImageRecord.from_entry(line, sink.locate)
    assert record.to_journal(sink.relative) == line  # the line is the record, and reads back as it
    shown = ImageRecord.from_json(summary["images"][0])
    assert shown == record  # the summary's record is the same record, outputs located
    table = rows([line])
    assert sorted(row["variation"] for row in table) == [1, 2]  # best first
    assert [row["variation"] for row in table] == [v["n"] for v in record.variations]
    assert [row["result"] for row in table] == [v["outputs"]["result"] for v in line["variations"]]
    assert {row["settings"] for row in table} == {record.settings} and table[0]["seed"] == record.seed
    assert table[0]["quality"] == record.quality and table[0]["room"] == record.room
