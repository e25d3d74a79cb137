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
