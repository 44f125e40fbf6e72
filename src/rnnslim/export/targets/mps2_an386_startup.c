/*
 * mps2_an386_startup.c: bare-metal start-up of rnnslim's Cortex-M4 check images under
 *
 *     qemu-system-arm -M mps2-an386 -nographic -semihosting -kernel check_main.exe
 *
 * Vector table at address 0 (initial stack pointer, reset handler, fault handlers), a
 * reset handler that enables the FPU (the images use -mfloat-abi=hard), copies .data from
 * flash to RAM, zeroes .bss, opens newlib's semihosting stdio (librdimon: printf goes to
 * the host's stdout), runs main() and leaves through exit(), whose _exit is the
 * semihosting SYS_EXIT call that ends QEMU. A fault prints a line and exits with an error
 * instead of hanging the emulator. Link with `--specs=rdimon.specs -nostartfiles -T
 * mps2_an386.ld`. C99, nothing board-specific beyond the memory map.
 */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t _estack, _sidata, _sdata, _edata, _sbss, _ebss;
extern int main(void);
extern void initialise_monitor_handles(void);

void Reset_Handler(void);
void Fault_Handler(void);

#define SYS_WRITE0 0x04
#define SYS_EXIT 0x18
#define ADP_Stopped_RunTimeError 0x20023

static int semihost(int op, const void *arg) {
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void Fault_Handler(void) {
    semihost(SYS_WRITE0, "fault: hard/mem/bus/usage fault or unexpected interrupt\n");
    semihost(SYS_EXIT, (const void *)ADP_Stopped_RunTimeError);
    for (;;) {
    }
}

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&_estack), /* initial main stack pointer */
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
    0, 0, 0, 0,
    Fault_Handler, /* SVCall */
    Fault_Handler, /* DebugMonitor */
    0,
    Fault_Handler, /* PendSV */
    Fault_Handler, /* SysTick */
};

/* normally crti.o's (absent with -nostartfiles); newlib's exit() calls __libc_fini_array */
void _init(void);
void _fini(void);
void _init(void) {}
void _fini(void) {}

void Reset_Handler(void) {
    uint32_t *src = &_sidata, *dst = &_sdata;
    /* CPACR: full access to CP10 and CP11 (the FPU) before any floating-point instruction */
    *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
    initialise_monitor_handles();
    exit(main());
}
