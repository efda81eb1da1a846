"""A run's TensorBoard curves."""
import sys
import time
from pathlib import Path

from tqdm import tqdm

from dann import outputs
from dann.common import UserError


class Curves:
    """TensorBoard scalars in the run folder, written by tensorboardX's event writer in this
    thread. (Its SummaryWriter writes from a thread of its own, which on a full disk dies with a
    traceback and then blocks training once its queue of 10 events is full.) A write that fails
    is one line, and training goes on without curves."""

    def __init__(self, folder):
        from tensorboardX.event_file_writer import EventsWriter
        self.folder, self.file = folder, None
        try:
            self.file = EventsWriter(str(Path(folder) / "events"))
            outputs.record(self.file._file_name)  # a new name each time (the time and host): nothing of the user's
        except (OSError, UserError) as e:
            self.give_up(e)

    def add(self, scalars, step):
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.summary import scalar
        if self.file is None:
            return
        try:
            for tag, value in scalars.items():
                self.file.write_event(Event(wall_time=time.time(), step=step, summary=scalar(tag, value)))
            self.file.flush()  # every 50 steps: TensorBoard shows a run as it trains
        except OSError as e:
            self.give_up(e)

    def close(self):
        if self.file is not None:
            try:
                self.file.close()
            except OSError as e:
                self.give_up(e)

    def give_up(self, error):
        cause = getattr(error, "strerror", None) or error
        tqdm.write(f"could not write TensorBoard curves to {self.folder} ({cause}); training goes "
                   "on without them (checkpoints and metrics.json are written apart)", file=sys.stderr)
        self.file = None
