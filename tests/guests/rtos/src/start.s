// Entry of the demo RTOS: x0 = its device tree, MMU off, at EL1 or EL2.

    .section .text.start, "ax"
    .global _start
_start:
    mov     x19, x0
    msr     daifset, #0xf
    bl      amp_enable_fp           // boards/src/rt.s
    adr     x20, _start             // linked at 0, placed here
    mov     x0, x20
    bl      amp_relocate
    bl      amp_zero_bss
    adrp    x1, __stack_top
    add     x1, x1, :lo12:__stack_top
    mov     sp, x1
    mov     x0, x19
    mov     x1, x20
    bl      rtos_main
5:  wfe
    b       5b

// A secondary core of this partition, started by rtos_main: x0 = its stack top.
    .global secondary_entry
secondary_entry:
    mov     sp, x0
    msr     daifset, #0xf
    bl      amp_enable_fp
    bl      rtos_secondary
6:  wfe
    b       6b

// Exception vectors (VBAR_EL1): IRQs taken from this EL, on SP_EL0 or
// SP_EL1, go to irq_entry; anything else parks the core, as nothing else is
// expected.
    .section .text.vectors, "ax"
    .balign 2048
    .global rtos_vectors
rtos_vectors:
    .balign 128                     // 0x000 current EL, SP0: synchronous
    b       .
    .balign 128                     // 0x080: IRQ
    b       irq_entry
    .rept 3                         // 0x100 FIQ, 0x180 SError; 0x200 SPx: synchronous
    .balign 128
    b       .
    .endr
    .balign 128                     // 0x280 current EL, SPx: IRQ
    b       irq_entry
    .rept 10                        // FIQ, SError; lower ELs
    .balign 128
    b       .
    .endr
    .balign 128

// Saves what a call may clobber (x0-x18, x29, x30, all of v0-v31 with
// FPCR/FPSR: the interrupted code may use any vector register's upper half),
// handles the interrupts, and returns to the interrupted code. `frame stp`
// saves the registers, `frame ldp` restores them (x0 last; FPCR/FPSR apart).
.macro frame op
    \op     x2, x3, [sp, #16]
    \op     x4, x5, [sp, #32]
    \op     x6, x7, [sp, #48]
    \op     x8, x9, [sp, #64]
    \op     x10, x11, [sp, #80]
    \op     x12, x13, [sp, #96]
    \op     x14, x15, [sp, #112]
    \op     x16, x17, [sp, #128]
    \op     x18, x29, [sp, #144]
    add     x0, sp, #192
    \op     q0, q1, [x0, #0]
    \op     q2, q3, [x0, #32]
    \op     q4, q5, [x0, #64]
    \op     q6, q7, [x0, #96]
    \op     q8, q9, [x0, #128]
    \op     q10, q11, [x0, #160]
    \op     q12, q13, [x0, #192]
    \op     q14, q15, [x0, #224]
    \op     q16, q17, [x0, #256]
    \op     q18, q19, [x0, #288]
    \op     q20, q21, [x0, #320]
    \op     q22, q23, [x0, #352]
    \op     q24, q25, [x0, #384]
    \op     q26, q27, [x0, #416]
    \op     q28, q29, [x0, #448]
    \op     q30, q31, [x0, #480]
.endm

irq_entry:
    sub     sp, sp, #(24 * 8 + 32 * 16)
    stp     x0, x1, [sp, #0]
    frame   stp
    mrs     x0, fpcr
    mrs     x1, fpsr
    stp     x30, x0, [sp, #160]
    str     x1, [sp, #176]
    bl      rtos_irq
    ldp     x30, x0, [sp, #160]
    ldr     x1, [sp, #176]
    msr     fpcr, x0
    msr     fpsr, x1
    frame   ldp
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #(24 * 8 + 32 * 16)
    eret
