"""One fuzz case in a forked child: a timeout, an address-space limit, and an outcome dict.

    out = in_child(load_case, path, ref)   # load_case(path, ref) -> {"class": ..., ...} in the child

The child runs fn(*args) under RLIMIT_AS = the parent's size + `mem_limit` and sends its dict
back through a pipe (JSON). What the parent returns: that dict with "seconds", or
{"class": "traceback"} when fn raised, "hang" when no answer came in `timeout` seconds (the
child is killed), "memory" when the child died of SIGKILL before answering (the kernel's
answer to the limit), "crash" when it died otherwise.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import time
from pathlib import Path


def _vmsize() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def in_child(fn, *args, timeout: float = 10.0, mem_limit: int = 2 << 30) -> dict:
    r, wfd = os.pipe()
    limit = _vmsize() + mem_limit
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        try:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            try:
                out = fn(*args)
            except BaseException as e:  # noqa: BLE001 - what a fuzz case is looking for
                out = {"class": "traceback", "message": f"{type(e).__name__}: {e}"[:400]}
            os.write(wfd, json.dumps(out, default=str).encode())
        finally:
            os._exit(0)
    os.close(wfd)
    chunks, deadline = [], time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(r)
            return {"class": "hang", "seconds": timeout}
        ready, _, _ = select.select([r], [], [], left)
        if ready:
            b = os.read(r, 1 << 16)
            if not b:
                break
            chunks.append(b)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if not chunks:
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        return {"class": "memory" if sig == signal.SIGKILL else "crash", "message": f"child exit status {status}"}
    out = json.loads(b"".join(chunks))
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def report(summary: dict, problems: list) -> None:
    """Print a campaign's headline numbers and its first 30 problems."""
    print(json.dumps({k: summary[k] for k in ("cases", "classes", "slowest_case_s", "wall_s")}, indent=1))
    for p in problems[:30]:
        print(p)
