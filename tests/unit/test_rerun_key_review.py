"""The rerun key's output stamps (crawler/reuse.py), in-process."""

from __future__ import annotations

import os
import time
from pathlib import Path

from crawler import reuse
from crawler.export import analysis
from crawler.state.store import StateStore


def test_an_output_edited_in_place_with_its_mtime_given_back_is_a_change(tmp_path: Path) -> None:
    """Same size, same inode, the old mtime restored (``touch -r``, ``cp -p``-style tools):
    only the ctime tells the bytes were rewritten."""
    output = tmp_path / "out.jsonl"
    output.write_bytes(b'{"a": 1}\n')
    before = output.stat()
    key = reuse.rerun_key("s", [], [output])
    _until_file_times_move_past(before.st_ctime_ns, tmp_path / "probe")
    with output.open("r+b") as fh:
        fh.write(b'{"a": 2}\n')
    os.utime(output, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = output.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino, before.st_size, before.st_mtime_ns,
    )  # fmt: skip
    assert reuse.rerun_key("s", [], [output]) != key
    assert reuse.rerun_key("s", [], [output]) == reuse.rerun_key("s", [], [output])


def _until_file_times_move_past(ctime_ns: int, probe: Path) -> None:
    """File times come from a coarse clock (a few ms): an edit within the same tick as the
    write before it has the same ctime, as it would in no real use. Waits on the filesystem's
    clock itself: a file touched now carries a later ctime."""
    while True:
        probe.write_bytes(b"")
        if probe.stat().st_ctime_ns > ctime_ns:
            return


def test_a_run_whose_report_was_not_written_leaves_no_rerun_key(tmp_path: Path) -> None:
    """The dataset step left the key before it wrote the run report: a report that failed
    (exit 5) still let the next run skip, reporting "unchanged since" a run that failed."""
    state = tmp_path / "state.sqlite3"
    StateStore(state).close()
    report_file = tmp_path / "digests.run.json"
    report_file.mkdir()  # a run report cannot replace a folder
    snapshot = str(tmp_path / "digests.jsonl")
    rerun = {
        "state_db": str(state), "snapshot": snapshot, "settings": "s",
        "read": [], "outputs": [], "valid_until": time.time() + 3600,
        "summary": {"run_id": "r"},
    }  # fmt: skip
    job = {
        "run_report": {"problems": [], "stats": {}}, "exit_status": 0,
        "forced_reason": "shutdown forced", "run_report_file": str(report_file), "rerun": rerun,
    }  # fmt: skip
    assert analysis.conclude(job, None) == 5
    store = StateStore(state)
    assert store.rerun(snapshot) is None
    store.close()
    report_file.rmdir()
    assert analysis.conclude(job, None) == 0  # the same run with its report written
    store = StateStore(state)
    assert store.rerun(snapshot) is not None
    store.close()
