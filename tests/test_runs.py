"""The run directory's files: a damaged record line is skipped with one warning, a write that
fails leaves what was there intact, the recurrent state of any form round-trips, and one
process at a time holds a run's lock."""

import errno
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from rnnscope import runs
from rnnscope.errors import RnnscopeError, RnnscopeWarning, WriteFailed


def write_lines(path, *lines: bytes):
    (path / runs.METRICS).write_bytes(b"".join(lines))


def record(step: int) -> bytes:
    return (json.dumps({"step": step, "train_nll": 1.0 / step}) + "\n").encode()


def test_a_record_being_written_is_skipped_without_a_warning(tmp_path):
    write_lines(tmp_path, record(1), record(2), b'{"step": 3, "train_')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [r["step"] for r in runs.read_metrics(tmp_path)] == [1, 2]


def test_garbage_lines_are_skipped_with_one_warning_naming_them(tmp_path):
    write_lines(tmp_path, record(1), b"not json at all\n", b"\xff\xfe\n", b"[1, 2]\n",
                b'{"train_nll": 2.0}\n', b'{"step": "4"}\n', b"\n", record(5))
    with pytest.warns(RnnscopeWarning) as caught:
        recs = runs.read_metrics(tmp_path)
    assert [r["step"] for r in recs] == [1, 5]
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "\n" not in message and "skipped 5 unreadable lines" in message
    assert "line 2: not JSON" in message and str(tmp_path / runs.METRICS) in message


def test_keep_records_drops_garbage_and_a_torn_line_and_keeps_a_clean_file_as_is(tmp_path):
    write_lines(tmp_path, record(1), b"garbage\n", record(2), record(3), b'{"step": 4')
    with pytest.warns(RnnscopeWarning):
        runs.keep_records(tmp_path, lambda r: r["step"] <= 2)
    assert (tmp_path / runs.METRICS).read_bytes() == record(1) + record(2)
    before = (tmp_path / runs.METRICS).stat().st_mtime_ns
    runs.keep_records(tmp_path, lambda r: True)
    assert (tmp_path / runs.METRICS).stat().st_mtime_ns == before


def test_a_failed_append_leaves_no_torn_line(tmp_path, failing_writes):
    write_lines(tmp_path, record(1))
    failing_writes(runs.METRICS, errno.ENOSPC)
    with pytest.raises(WriteFailed, match="metrics.jsonl: No space left on device .ENOSPC."):
        runs.append_record(tmp_path, {"step": 2, "train_nll": 0.5})
    assert (tmp_path / runs.METRICS).read_bytes() == record(1)


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, failing_writes):
    runs.write_text(tmp_path / "config.json", "old")
    failing_writes("config.json", errno.ENOSPC)
    with pytest.raises(WriteFailed, match=r"config.json: No space left on device \(ENOSPC\)"):
        runs.write_text(tmp_path / "config.json", "new" * 1000)
    assert (tmp_path / "config.json").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_a_read_only_directory_refuses_the_write_with_its_os_error(tmp_path, failing_writes):
    write_lines(tmp_path, record(1))
    failing_writes(runs.METRICS, errno.EACCES)
    with pytest.raises(WriteFailed, match="metrics.jsonl: Permission denied .EACCES."):
        runs.append_record(tmp_path, {"step": 2})
    assert (tmp_path / runs.METRICS).read_bytes() == record(1)


def test_a_write_into_a_directory_that_is_gone_names_the_path(tmp_path):
    with pytest.raises(WriteFailed, match="gone/best.npz: No such file or directory .ENOENT."):
        runs.save_checkpoint(tmp_path / "gone" / runs.BEST, {"Why": np.ones(2)}, {}, {}, {})


def test_checkpoint_keeps_every_part_of_the_recurrent_state(tmp_path):
    """The LSTM's state has two parts, h and c; each comes back as it was saved."""
    file = tmp_path / runs.CHECKPOINT
    state = {"h": np.ones((2, 2, 3)), "c": np.full((2, 2, 3), 7.0)}
    runs.save_checkpoint(file, {"Why": np.ones((3, 4))}, {"t": np.array(5)}, state, {"step": 5})
    params, opt, loaded, meta = runs.load_checkpoint(file)
    assert meta == {"step": 5} and int(opt["t"]) == 5 and loaded.keys() == state.keys()
    for k in state:
        np.testing.assert_array_equal(loaded[k], state[k])


def test_a_second_writer_is_refused_naming_the_owner(tmp_path):
    with runs.writer_lock(tmp_path) as left:
        assert left is None
        assert (tmp_path / runs.LOCK).read_text().strip() == str(os.getpid())
        with pytest.raises(RnnscopeError, match=f"being trained by process {os.getpid()}"):
            with runs.writer_lock(tmp_path):
                pass
    assert not (tmp_path / runs.LOCK).exists()
    with runs.writer_lock(tmp_path) as left:  # free again once released
        assert left is None


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    pid = dead_pid()
    (tmp_path / runs.LOCK).write_text(f"{pid}\n")
    with runs.writer_lock(tmp_path) as left:
        assert left == pid
        assert (tmp_path / runs.LOCK).read_text().strip() == str(os.getpid())
    assert not (tmp_path / runs.LOCK).exists()


def test_without_flock_the_pid_file_alone_is_the_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "fcntl", None)
    with runs.writer_lock(tmp_path):
        with pytest.raises(RnnscopeError, match=f"process {os.getpid()}.*delete"):
            with runs.writer_lock(tmp_path):
                pass
    assert not (tmp_path / runs.LOCK).exists()
