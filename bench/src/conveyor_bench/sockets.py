"""Round trips from a process to a server, counted by the kernel: `data_segs_out` of each of
its established TCP sockets to the server's port (`ss -tinp`). A client sends one flight of
data per request it waits on (a pipeline or an asyncpg `executemany` is one flight; a message
over the segment size, ~64 KB on loopback, a few), so the count is the number of round trips,
at no cost to the processes measured. Sockets opened and closed between two snapshots are
missed; connection pools keep theirs open."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping

_PIDS = re.compile(r"pid=(\d+)")
_SEGS = re.compile(r"\bdata_segs_out:(\d+)")

# (local address, remote address) -> data segments sent so far
SocketCounts = dict[tuple[str, str], int]


def available() -> bool:
    return shutil.which("ss") is not None


def sent_segments(pids: Iterable[int], port: int) -> SocketCounts:
    """Every established TCP socket of `pids` to `port`, with the data segments it sent."""
    wanted = set(pids)
    if not wanted or not available():
        return {}
    out = subprocess.run(
        ["ss", "-tinpH", "state", "established", f"( dport = :{port} )"],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    ).stdout
    counts: SocketCounts = {}
    current: tuple[str, str] | None = None
    for line in out.splitlines():
        if not line.startswith(("\t", " ")):
            fields = line.split()
            # Recv-Q Send-Q Local Peer Process (state is omitted when filtered on it)
            owners = {int(p) for p in _PIDS.findall(line)}
            current = (fields[2], fields[3]) if len(fields) >= 4 and owners & wanted else None
            continue
        if current is not None:
            match = _SEGS.search(line)
            counts[current] = int(match.group(1)) if match else 0
            current = None
    return counts


def round_trips(before: SocketCounts, after: SocketCounts) -> int:
    """Segments sent between two snapshots, over the sockets open at the second."""
    return sum(max(0, sent - before.get(key, 0)) for key, sent in after.items())


def snapshot(groups: Mapping[str, Iterable[int]], port: int) -> dict[str, SocketCounts]:
    return {name: sent_segments(pids, port) for name, pids in groups.items()}


def deltas(before: Mapping[str, SocketCounts], after: Mapping[str, SocketCounts]) -> dict[str, int]:
    return {name: round_trips(before.get(name, {}), counts) for name, counts in after.items()}
