/*
 * hide_avx512.so — make a process (and the processes it starts) believe the CPU has no AVX-512.
 *
 * Why: onnxruntime (MLAS), PyTorch (cpuinfo/oneDNN) and convscope all choose their kernels from
 * CPUID at run time, and only some of them have a switch to narrow that choice. To compare all
 * three on their AVX2 paths on an AVX-512 machine, this library asks Linux to make the CPUID
 * instruction trap in this process (arch_prctl(ARCH_SET_CPUID, 0), "CPUID faulting", available
 * on Intel CPUs and in most VMs on them: `grep cpuid_fault /proc/cpuinfo`), answers each trapped
 * CPUID itself from the real one, and clears the AVX-512 feature bits on the way.
 *
 *     cc -O2 -shared -fPIC -o hide_avx512.so hide_avx512.c
 *     LD_PRELOAD=$PWD/hide_avx512.so python3 bench.py
 *
 * `scripts/bench/avx2_only.sh CMD...` builds it and runs CMD under it. With
 * HIDE_AVX512_CHECK=1 the library prints what leaf 7 looks like before and after, to stderr.
 *
 * Limits: the dynamic loader and glibc read CPUID before any preloaded library runs, so glibc's
 * own string functions may still use their AVX-512 variants; a program that installs its own
 * SIGSEGV handler over this one would see the trap (none of the three does). The faulting flag
 * survives fork and clone and is reset by execve, where LD_PRELOAD sets it again.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef ARCH_GET_CPUID
#define ARCH_GET_CPUID 0x1011
#define ARCH_SET_CPUID 0x1012
#endif

static long arch_prctl(int code, unsigned long arg) { return syscall(SYS_arch_prctl, code, arg); }

static void real_cpuid(uint32_t leaf, uint32_t sub, uint32_t out[4]) {
    __asm__ volatile("cpuid" : "=a"(out[0]), "=b"(out[1]), "=c"(out[2]), "=d"(out[3]) : "a"(leaf), "c"(sub));
}

/* Clears the AVX-512 family (and AMX, which needs the same wide state) from a CPUID answer. */
static void mask(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    if (leaf == 7 && sub == 0) {
        /* EBX: F 16, DQ 17, IFMA 21, PF 26, ER 27, CD 28, BW 30, VL 31 */
        r[1] &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31));
        /* ECX: VBMI 1, VBMI2 6, VNNI 11, BITALG 12, VPOPCNTDQ 14 */
        r[2] &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
        /* EDX: 4VNNIW 2, 4FMAPS 3, VP2INTERSECT 8, AMX-BF16 22, FP16 23, AMX-TILE 24, AMX-INT8 25 */
        r[3] &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25));
    } else if (leaf == 7 && sub == 1) {
        /* EAX: AVX-VNNI stays (it is a VEX instruction); AVX512_BF16 5 goes */
        r[0] &= ~(1u << 5);
    } else if (leaf == 0xd && sub == 0) {
        /* Supported XCR0 state: opmask 5, ZMM_Hi256 6, Hi16_ZMM 7 */
        r[0] &= ~((1u << 5) | (1u << 6) | (1u << 7));
    }
}

static void on_segv(int sig, siginfo_t *info, void *context) {
    ucontext_t *uc = (ucontext_t *)context;
    greg_t *g = uc->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)g[REG_RIP];
    if (ip && ip[0] == 0x0f && ip[1] == 0xa2) {
        uint32_t leaf = (uint32_t)g[REG_RAX], sub = (uint32_t)g[REG_RCX], r[4];
        arch_prctl(ARCH_SET_CPUID, 1);
        real_cpuid(leaf, sub, r);
        arch_prctl(ARCH_SET_CPUID, 0);
        mask(leaf, sub, r);
        g[REG_RAX] = r[0];
        g[REG_RBX] = r[1];
        g[REG_RCX] = r[2];
        g[REG_RDX] = r[3];
        g[REG_RIP] += 2;
        return;
    }
    /* Not ours: fall back to the default action, which the re-executed instruction then meets. */
    (void)info;
    signal(sig, SIG_DFL);
}

__attribute__((constructor)) static void hide_avx512(void) {
    uint32_t before[4];
    real_cpuid(7, 0, before);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, NULL) != 0 || arch_prctl(ARCH_SET_CPUID, 0) != 0) {
        fprintf(stderr, "hide_avx512: this kernel/CPU cannot make CPUID trap (no cpuid_fault); AVX-512 stays visible\n");
        exit(3);
    }
    if (getenv("HIDE_AVX512_CHECK")) {
        uint32_t after[4];
        real_cpuid(7, 0, after); /* traps into on_segv */
        fprintf(stderr, "hide_avx512: leaf 7 ebx %08x -> %08x (avx512f %u -> %u)\n", before[1], after[1],
                (before[1] >> 16) & 1, (after[1] >> 16) & 1);
    }
}
