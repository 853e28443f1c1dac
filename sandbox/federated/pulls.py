"""Flower's object pulls, retried after 50 ms rather than 1 s.

Flower 1.41 hands a message on before its objects (the model's arrays, SecAgg+'s keys and
shares) have all arrived, and whoever reads it pulls the objects, retrying a missing one after
1 s, then 2 s, 4 s (`PULL_INITIAL_BACKOFF` and `PULL_BACKOFF_CAP` in `flwr.supercore.constant`,
with no setting):

- a SuperNode stores a message it pulled from the SuperLink, then pulls the message's objects;
  the ClientApp started for it meanwhile finds them missing;
- the SuperLink has a message from the ServerApp before the ServerApp has pushed its objects,
  and a SuperNode that pulls in between finds them missing;
- the ServerApp pulls a holder's reply whose objects the SuperNode is still pushing.

On a district node's loopback, and on a SuperLink that answers a missing object from its
database, those waits were most of a SecAgg+ stage: a round of four stages lost 2 to 4 s at
each holder. `quicken` rebinds the pull function that one Flower module calls, with the first
retry after `INITIAL_BACKOFF_S` and at most `BACKOFF_CAP_S` between retries. The pulls, their
limits (Flower's two hours, `PULL_MAX_TIME`) and their errors are Flower's. Each of the three
readers above calls it: the node's SuperNode (`sandbox.federated.supernode`), its ClientApp
launcher (`sandbox.federated.launcher`, before it forks) and the ServerApp.
"""
from __future__ import annotations

import functools
import importlib

INITIAL_BACKOFF_S = 0.05
BACKOFF_CAP_S = 0.5

# Who pulls what, in Flower 1.41: the module and the name it calls the pull by.
SUPERNODE = ("flwr.supernode.start_client_internal", "pull_objects")
CLIENTAPP = ("flwr.supernode.runtime.run_clientapp", "pull_and_inflate_object_from_tree")
SERVERAPP = ("flwr.superlink.grid.http_grid", "pull_objects")


def quicken(reader: tuple[str, str]) -> None:
    """Make `reader`'s pulls retry a missing object after `INITIAL_BACKOFF_S`, doubling up to
    `BACKOFF_CAP_S`. Calling it twice changes nothing more."""
    module = importlib.import_module(reader[0])
    pull = getattr(module, reader[1])
    if getattr(pull, "miliao_quickened", False):
        return
    quick = functools.partial(pull, initial_backoff=INITIAL_BACKOFF_S, backoff_cap=BACKOFF_CAP_S)
    quick.miliao_quickened = True
    setattr(module, reader[1], quick)
