// Entry of the demo RTOS: x0 = its device tree, MMU off, at EL1 or EL2.

    .section .text.start, "ax"
    .global _start
_start:
    mov     x19, x0
    msr     daifset, #0xf
    bl      enable_fp
    // Apply the relative fixups for the address we were placed at.
    adr     x20, _start
    adrp    x1, __rela_start
    add     x1, x1, :lo12:__rela_start
    adrp    x2, __rela_end
    add     x2, x2, :lo12:__rela_end
1:  cmp     x1, x2
    b.hs    2f
    ldp     x3, x4, [x1], #16
    ldr     x5, [x1], #8
    cmp     x4, #1027               // R_AARCH64_RELATIVE
    b.ne    1b
    add     x5, x5, x20
    str     x5, [x20, x3]
    b       1b
2:  adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
3:  cmp     x1, x2
    b.hs    4f
    stp     xzr, xzr, [x1], #16
    b       3b
4:  adrp    x1, __stack_top
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
    bl      enable_fp
    bl      rtos_secondary
6:  wfe
    b       6b

// FP/SIMD on at the current exception level (Rust may use vector registers).
enable_fp:
    mrs     x9, CurrentEL
    ubfx    x9, x9, #2, #2
    cmp     x9, #2
    b.eq    7f
    mov     x10, #(3 << 20)
    msr     cpacr_el1, x10
    isb
    ret
7:  mrs     x10, cptr_el2
    bic     x10, x10, #(1 << 10)
    msr     cptr_el2, x10
    isb
    ret
