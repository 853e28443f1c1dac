"""`flower-supernode`, asking the SuperLink for messages every 0.2 s while a run is going on.

Flower 1.41's SuperNode waits a fixed 3 s after each empty pull (`time.sleep(3)` in
`flwr.supernode.start_client_internal`, with no setting). A round of SecAgg+ is four exchanges,
each of which the node only notices on its next pull, and each of which waits for the last of
the holders to notice: on average about 2 s each at a 3 s poll, 8 s a round. Its other waits are
0.5 s looks at its own state, for the ClientApp's reply and for that reply's objects: 0.25 s on
average between a holder's answer and its sending, four times a round.

This runs Flower's own `flower-supernode` entry point, with that module's clock changed:
- after an empty pull it waits `POLL_S` while the node is answering a run's messages, and
  `IDLE_POLL_S` once it has answered none for `IDLE_AFTER_S` (the SuperLink answers each pull
  from its database: a city's nodes asking five times a second all day would be load for
  nothing; the first message of a job waits at most `IDLE_POLL_S`);
- its looks at its own state wait `LOCAL_POLL_S` (in the node's memory: nothing crosses the
  network). The node only looks at its own state while it answers a message, which is how the
  clock knows a run is going on.
Every other wait, and everything else, is Flower's, except that it retries a message's missing
objects sooner (`sandbox.federated.pulls`). `python -m sandbox.federated.node start` runs the
node through this.
"""
from __future__ import annotations

import sys
import time

POLL_S = 0.2  # after an empty pull from the SuperLink, during a run (Flower: 3 s)
IDLE_POLL_S = 1.0  # after an empty pull, once the node has been idle for IDLE_AFTER_S
IDLE_AFTER_S = 30.0
LOCAL_POLL_S = 0.05  # between looks at the node's own state (Flower: 0.5 s)


class CappedClock:
    """The `time` module, except for `sleep`: Flower's wait after an empty pull (a wait of a
    second or more) becomes `POLL_S`, or `IDLE_POLL_S` when the node has not answered a
    message for `IDLE_AFTER_S`; a shorter wait (a look at the node's own state, made only while
    it answers a message) becomes at most `LOCAL_POLL_S`."""

    def __init__(self) -> None:
        self.answered_at = float("-inf")  # a node starts idle

    def __getattr__(self, name):
        return getattr(time, name)

    def sleep(self, seconds: float) -> None:
        if seconds < 1:
            self.answered_at = time.monotonic()
            time.sleep(min(seconds, LOCAL_POLL_S))
            return
        idle = time.monotonic() - self.answered_at > IDLE_AFTER_S
        time.sleep(min(seconds, IDLE_POLL_S if idle else POLL_S))


def main() -> None:
    from flwr.supernode import start_client_internal
    from flwr.supernode.cli import flower_supernode

    from .pulls import SUPERNODE, quicken

    start_client_internal.time = CappedClock()
    quicken(SUPERNODE)
    sys.argv[0] = "flower-supernode"
    flower_supernode()


if __name__ == "__main__":
    main()
