"""python _timed.py OUTFILE CMD...: run CMD (stdout passed through, stdin /dev/null), write
its wall time in seconds to OUTFILE, exit with its status. A run_prefix of check_on_host,
so the emulated run is timed alone (not the compile, not the host's expected hashes).
Standalone on purpose: no rnnslim import between the clock reads."""

import subprocess
import sys
import time

if __name__ == "__main__":
    out, cmd = sys.argv[1], sys.argv[2:]
    t0 = time.perf_counter()
    rc = subprocess.run(cmd, stdin=subprocess.DEVNULL).returncode
    elapsed = time.perf_counter() - t0
    with open(out, "w") as f:
        f.write(f"{elapsed:.6f} {rc}\n")
    sys.exit(rc)
