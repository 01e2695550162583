"""TensorBoard (`pip install "rnnscope[tensorboard]"`): every panel reading as a scalar, tagged
as the report groups them (tags.py), and each triage finding as text at the step it first held
(tag `triage/{id}`).

`TensorBoard(writer)` takes any SummaryWriter-like writer (torch.utils.tensorboard's,
tensorboardX's, Lightning's `logger.experiment`): add_scalar, add_text and flush are all it
calls; the writer stays the caller's (flushed, never closed). `TensorBoard.into(log_dir)` makes
rnnscope's own `Writer` on the tensorboard package alone (no torch needed: a C program's or a
log's run exports too) and closes it at the end.

`Writer` writes with TensorBoard's own EventFileWriter and the scalar and text plugins' own
summary metadata, as tensorboard.summary.Writer does for scalars (which has no text). A run
resumed from step s writes a SessionLog START at s + 1 first, which makes TensorBoard drop the
points of the earlier process from s + 1 on (the records a resume rewrites).
"""

from __future__ import annotations

import time
from pathlib import Path

from . import finding_text, need, replay
from .tags import scalars

EXTRA = "tensorboard"


class Writer:
    """A SummaryWriter with what rnnscope writes: add_scalar, add_text, flush, close."""

    def __init__(self, log_dir: str | Path, purge_step: int | None = None) -> None:
        need("tensorboard", EXTRA, "writing TensorBoard event files")
        from tensorboard.compat.proto import event_pb2
        from tensorboard.plugins.text import metadata as text_meta
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
        from tensorboard.util.tensor_util import make_tensor_proto

        self.pb, self.make_tensor = event_pb2, make_tensor_proto
        self.text_meta = text_meta.create_summary_metadata(None, None)
        self.events = EventFileWriter(str(log_dir))
        if purge_step is not None:
            start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
            self.events.add_event(event_pb2.Event(step=purge_step, wall_time=time.time(),
                                                  session_log=start))

    def add_scalar(self, tag: str, value: float, global_step: int) -> None:
        """A simple_value (float32), as torch.utils.tensorboard writes scalars."""
        self._emit(global_step, tag=tag, simple_value=value)

    def add_text(self, tag: str, text: str, global_step: int) -> None:
        """Under tag/text_summary, as torch.utils.tensorboard names it."""
        tensor = self.make_tensor([text.encode("utf-8")])
        self._emit(global_step, tag=f"{tag}/text_summary", tensor=tensor,
                   metadata=self.text_meta)

    def _emit(self, step: int, **value) -> None:
        event = self.pb.Event(wall_time=time.time(), step=int(step))
        event.summary.value.add(**value)
        self.events.add_event(event)

    def flush(self) -> None:
        self.events.flush()

    def close(self) -> None:
        self.events.close()


class TensorBoard:
    """The sink (rnnscope.sinks.Sink) into a SummaryWriter-like writer."""

    def __init__(self, writer=None, log_dir: str | Path | None = None) -> None:
        self.writer, self.log_dir = writer, log_dir

    @classmethod
    def into(cls, log_dir: str | Path) -> TensorBoard:
        """A sink that makes its own Writer in log_dir when the run starts, and closes it."""
        need("tensorboard", EXTRA, f"--tensorboard {log_dir}")  # refused before training
        return cls(log_dir=log_dir)

    def start(self, path: Path, step: int) -> None:
        if self.log_dir is not None:
            self.writer = Writer(self.log_dir, purge_step=step + 1 if step else None)

    def write(self, rec: dict, findings: list[dict]) -> None:
        step = rec["step"]
        for tag, value in scalars(rec).items():
            self.writer.add_scalar(tag, value, step)
        for f in findings:
            self.writer.add_text(f"triage/{f['id']}", finding_text(f), step)

    def close(self) -> None:
        if self.writer is None:
            return
        (self.writer.close if self.log_dir is not None else self.writer.flush)()


def export(path: str | Path, log_dir: str | Path) -> int:
    """Write the run at path (any run: rnnscope's, rnnscope.torch.Panel's, a C program's, a
    log) into TensorBoard event files in log_dir; returns the number of records."""
    return replay(Path(path), [TensorBoard.into(log_dir)])
