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
// handles the interrupts, and returns to the interrupted code.
irq_entry:
    sub     sp, sp, #(24 * 8 + 32 * 16)
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x29, [sp, #144]
    mrs     x0, fpcr
    mrs     x1, fpsr
    stp     x30, x0, [sp, #160]
    str     x1, [sp, #176]
    add     x0, sp, #192
    stp     q0, q1, [x0, #0]
    stp     q2, q3, [x0, #32]
    stp     q4, q5, [x0, #64]
    stp     q6, q7, [x0, #96]
    stp     q8, q9, [x0, #128]
    stp     q10, q11, [x0, #160]
    stp     q12, q13, [x0, #192]
    stp     q14, q15, [x0, #224]
    stp     q16, q17, [x0, #256]
    stp     q18, q19, [x0, #288]
    stp     q20, q21, [x0, #320]
    stp     q22, q23, [x0, #352]
    stp     q24, q25, [x0, #384]
    stp     q26, q27, [x0, #416]
    stp     q28, q29, [x0, #448]
    stp     q30, q31, [x0, #480]
    bl      rtos_irq
    add     x0, sp, #192
    ldp     q0, q1, [x0, #0]
    ldp     q2, q3, [x0, #32]
    ldp     q4, q5, [x0, #64]
    ldp     q6, q7, [x0, #96]
    ldp     q8, q9, [x0, #128]
    ldp     q10, q11, [x0, #160]
    ldp     q12, q13, [x0, #192]
    ldp     q14, q15, [x0, #224]
    ldp     q16, q17, [x0, #256]
    ldp     q18, q19, [x0, #288]
    ldp     q20, q21, [x0, #320]
    ldp     q22, q23, [x0, #352]
    ldp     q24, q25, [x0, #384]
    ldp     q26, q27, [x0, #416]
    ldp     q28, q29, [x0, #448]
    ldp     q30, q31, [x0, #480]
    ldp     x30, x0, [sp, #160]
    ldr     x1, [sp, #176]
    msr     fpcr, x0
    msr     fpsr, x1
    ldp     x0, x1, [sp, #0]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x29, [sp, #144]
    add     sp, sp, #(24 * 8 + 32 * 16)
    eret
