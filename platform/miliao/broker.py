"""The development broker: kombu's filesystem transport, safe for several processes.

`make demo` runs its web process, workers and beat as separate processes on one machine
without a Redis server, so they share a broker folder (settings.BROKER_DIR). kombu's own
filesystem transport writes a message into the queue folder in place, where a consumer
polling the folder can take it half-written: an empty message, a `JSONDecodeError`, and the
worker stops (kombu#1551). Here:

- a message is written into a staging folder and renamed into the queue folder, so a
  consumer sees it whole or not at all;
- a consumer takes a message by renaming it into a processing folder on the same
  filesystem, which only one consumer can do, then reads and deletes it.

Everything else (queues, bindings, fanout for remote control) is kombu's. Production uses
Redis; settings refuse this transport there.
"""
from __future__ import annotations

import os
import uuid
from queue import Empty
from time import monotonic

from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads


class Channel(filesystem.Channel):
    @property
    def staging_folder(self) -> str:
        return self.transport_options["staging_folder"]

    @property
    def processing_folder(self) -> str:
        return self.transport_options["processing_folder"]

    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        staged = os.path.join(self.staging_folder, name)
        with open(staged, "wb") as f:
            f.write(str_to_bytes(dumps(payload)))
        os.replace(staged, os.path.join(self.data_folder_out, name))

    def _get(self, queue):
        wanted = f"{queue}.msg"
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != wanted:
                continue
            taken = os.path.join(self.processing_folder, name)
            try:
                os.rename(os.path.join(self.data_folder_in, name), taken)
            except OSError:  # another consumer took it first
                continue
            with open(taken, "rb") as f:
                payload = f.read()
            os.unlink(taken)
            return loads(bytes_to_str(payload))
        raise Empty()


class Transport(filesystem.Transport):
    Channel = Channel
