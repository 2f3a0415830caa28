"""Read the records of an offline ``run-*.wandb`` file with W&B's own protobuf messages.

The file is a LevelDB-style log: a 7-byte header (":W&B", magic, version), then 32 KiB blocks of
chunks, each with a 7-byte header (crc32c, length, type: 1 full, 2 first, 3 middle, 4 last).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
FILE_HEADER = 7
CHUNK_HEADER = 7


def chunks(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(type, payload) of every chunk, skipping block trailers too short for a header."""
    pos = FILE_HEADER
    while pos + CHUNK_HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < CHUNK_HEADER:
            pos += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + CHUNK_HEADER])
        pos += CHUNK_HEADER
        if kind == 0:  # zero padding
            break
        yield kind, data[pos:pos + length]
        pos += length


def records(path: Path) -> Iterator[wandb_internal_pb2.Record]:
    """Every Record in the file, in order."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    buffer = b""
    for kind, payload in chunks(data):
        buffer = payload if kind in (1, 2) else buffer + payload
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buffer)
            yield record
