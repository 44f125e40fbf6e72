"""Run by tests/train/test_ddp.py under torchrun: several rnnslim CLI commands in the same
processes (one launch instead of one per command), each as `torchrun -m rnnslim.cli ...` runs it.

    torchrun --standalone --nproc_per_node 2 tests/ddp_cli_worker.py train ... ++ compress ...
"""

import sys

from rnnslim.cli import app


def main() -> None:
    args, commands = sys.argv[1:], [[]]
    for a in args:
        if a == "++":
            commands.append([])
        else:
            commands[-1].append(a)
    for cmd in commands:
        code = app(cmd, standalone_mode=False)
        if code:
            sys.exit(code)


if __name__ == "__main__":
    main()
