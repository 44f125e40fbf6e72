"""Cortex-M4 instructions per streaming step of an exported int8 model, counted by QEMU.

    from m4_icount import m4_instructions_per_step
    m4_instructions_per_step(integer_model, workdir, sparse="auto")  # {"instructions_per_step": ..., ...}

The model is exported (export_c with `sparse`) and linked, exactly as the Cortex-M4 bit-exactness
check builds it (rnnslim.export.targets: arm-none-eabi-gcc -mcpu=cortex-m4 -O2, portable C, the
AN386 start-up and linker script), with a small timing main: one warm-up step, then `steps` steps
between two reads of the AN386's CMSDK APB timer 0 (0x40000000, a 32-bit down counter on the
25 MHz peripheral clock). qemu-system-arm runs with -icount shift=0,sleep=off: virtual time
advances exactly 1 ns per executed guest instruction, so one timer tick is 40 instructions and
instructions per step = 40 x ticks / steps (+-40 / steps; the two timer reads add a few
instructions). QEMU does not model the M4's cycle timing (flash wait states, multiply latency),
so this counts instructions, not cycles. Also returned: the manifest's flash (const_bytes) and
the model object's text (code + const) for the M4.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from rnnslim.export.c_source import export_c
from rnnslim.export.targets import TARGETS, model_sizes, toolchain_available

TICK_NS = 40  # 25 MHz timer clock; -icount shift=0: one instruction per ns
_MAIN = """/* m4_icount main: steps between two reads of CMSDK APB timer 0 */
#include <stdio.h>
#include <stdint.h>
#include "m.h"
#define TIMER0_CTRL (*(volatile uint32_t *)0x40000000u)
#define TIMER0_VALUE (*(volatile uint32_t *)0x40000004u)
#define TIMER0_RELOAD (*(volatile uint32_t *)0x40000008u)

int main(void) {
    static m_state s;
    static float logits[M_OUTPUTS];
    uint32_t t0, t1;
    int j;
    m_init();
    m_reset(&s);
    TIMER0_RELOAD = 0xFFFFFFFFu;
    TIMER0_VALUE = 0xFFFFFFFFu;
    TIMER0_CTRL = 1u;
    m_step(&s, 1, logits); /* warm-up */
    t0 = TIMER0_VALUE;
    for (j = 0; j < STEPS; j++) m_step(&s, (j * 7 + 3) % M_VOCAB, logits);
    t1 = TIMER0_VALUE;
    printf("ticks %lu logit %d\\n", (unsigned long)(t0 - t1), (int)logits[0]);
    return 0;
}
"""


def m4_instructions_per_step(model, workdir: Path, sparse: bool | str = "auto", steps: int = 8,
                             timeout: float = 900) -> dict:
    reason = toolchain_available("cortex-m4")
    if reason:
        raise RuntimeError(reason)
    t = TARGETS["cortex-m4"]
    workdir = Path(workdir)
    facts = export_c(model, workdir / "c", name="m", sparse=sparse)
    main = workdir / "m4_main.c"
    main.write_text(_MAIN.replace("STEPS", str(steps)))
    exe = workdir / "m4.exe"
    cmd = [t.cc, "-std=c99", "-ffp-contract=off", *t.flags, *t.link, "-I", str(workdir / "c"), "-o", str(exe),
           str(main), str(workdir / "c" / "m.c")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode:
        raise RuntimeError(f"building the M4 image failed:\n{proc.stderr[-2000:]}")
    emu = [*t.run_prefix[:-2], "-icount", "shift=0,sleep=off", *t.run_prefix[-2:], str(exe)]
    proc = subprocess.run(emu, capture_output=True, text=True, timeout=timeout)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("ticks ")), None)
    if line is None:
        raise RuntimeError(f"the M4 image printed no count: {proc.stdout[-500:]} {proc.stderr[-500:]}")
    ticks = int(line.split()[1])
    return {"instructions_per_step": TICK_NS * ticks / steps, "timer_ticks": ticks, "steps": steps,
            "const_bytes": facts.const_bytes, "m4_text_bytes": model_sizes("cortex-m4", workdir / "c")["text"],
            "formats": facts.sparse_formats, "emulator": " ".join(emu[:-1])}
