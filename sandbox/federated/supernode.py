"""`flower-supernode`, asking the SuperLink for messages every `POLL_S` seconds when idle.

Flower 1.41's SuperNode waits a fixed 3 s after each empty pull (`time.sleep(3)` in
`flwr.supernode.start_client_internal`, with no setting). A round of SecAgg+ is four exchanges,
each of which the node only notices on its next pull: on average 1.5 s each, 6 s a round, at
every holder. This runs Flower's own `flower-supernode` entry point, with that module's clock
capping its waits at `POLL_S` (the SuperLink answers an empty pull from its database; a few
nodes polling twice a second is nothing to it). Every other wait, and everything else, is
Flower's. `python -m sandbox.federated.node start` runs the node through this.
"""
from __future__ import annotations

import sys
import time

POLL_S = 0.5


class CappedClock:
    """The `time` module, except that `sleep` waits at most `POLL_S`."""

    def __getattr__(self, name):
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(min(seconds, POLL_S))


def main() -> None:
    from flwr.supernode import start_client_internal
    from flwr.supernode.cli import flower_supernode

    start_client_internal.time = CappedClock()
    sys.argv[0] = "flower-supernode"
    flower_supernode()


if __name__ == "__main__":
    main()
