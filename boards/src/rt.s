// Start-up routines shared by every bare-metal program of the project (the boot
// stage, the demo RTOS). Each is called with `bl` before there is a stack and
// uses only the registers it names. The linker script of the program defines
// __rela_start/__rela_end and __bss_start/__bss_end.

    .section .text.amp_rt, "ax"

// amp_enable_fp: lets the current exception level use FP/SIMD (Rust code may
// use the vector registers; the reset value traps them). Clobbers x9, x10.
    .global amp_enable_fp
amp_enable_fp:
    mrs     x9, CurrentEL
    ubfx    x9, x9, #2, #2
    cmp     x9, #2
    b.eq    1f
    b.hi    2f
    mov     x10, #(3 << 20)         // CPACR_EL1.FPEN = 0b11
    msr     cpacr_el1, x10
    isb
    ret
1:  mrs     x10, cptr_el2
    bic     x10, x10, #(1 << 10)    // CPTR_EL2.TFP = 0
    msr     cptr_el2, x10
    isb
    ret
2:  msr     cptr_el3, xzr
    isb
    ret

// amp_relocate(x0 = the address the image runs at): applies the image's
// R_AARCH64_RELATIVE fixups (it was linked at 0). Clobbers x1-x5.
    .global amp_relocate
amp_relocate:
    adrp    x1, __rela_start
    add     x1, x1, :lo12:__rela_start
    adrp    x2, __rela_end
    add     x2, x2, :lo12:__rela_end
3:  cmp     x1, x2
    b.hs    4f
    ldp     x3, x4, [x1], #16       // r_offset, r_info
    ldr     x5, [x1], #8            // r_addend
    cmp     x4, #1027               // R_AARCH64_RELATIVE (no symbol)
    b.ne    3b
    add     x5, x5, x0
    str     x5, [x0, x3]
    b       3b
4:  ret

// amp_zero_bss: zeroes .bss (16-byte aligned by the linker script).
// Clobbers x1, x2.
    .global amp_zero_bss
amp_zero_bss:
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
5:  cmp     x1, x2
    b.hs    6f
    stp     xzr, xzr, [x1], #16
    b       5b
6:  ret
