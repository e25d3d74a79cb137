// Entry of the boot stage: an arm64 Linux Image header, so that every loader
// (QEMU -kernel, U-Boot booti, the Raspberry Pi firmware) places it on a 2 MiB
// boundary and passes the device tree's address in x0 with the MMU off.
// Header layout: Documentation/arch/arm64/booting.rst.

    .section .text.head, "ax"
    .global _start
_start:
    b       primary_entry           // code0
    .long   0                       // code1
    .quad   0                       // text_offset
    .quad   __image_size            // image_size: code, data, bss and stack
    .quad   0xa                     // flags: little-endian, 4K pages, anywhere
    .quad   0                       // res2
    .quad   0                       // res3
    .quad   0                       // res4
    .ascii  "ARM\x64"               // magic
    .long   0                       // res5

primary_entry:
    mov     x19, x0                 // device tree, kept for boot_main
    mov     x21, x1                 // where the packed image is: 0 (here) from a
                                    // loader, which must pass x1 = 0; set by
                                    // relocate_and_restart below
    msr     daifset, #0xf           // no interrupts until someone owns them

    bl      amp_enable_fp           // boards/src/rt.s
    adr     x20, _start             // linked at 0, running here
    mov     x0, x20
    bl      amp_relocate
    bl      amp_zero_bss
    // Take the stack at the top of the image.
    adrp    x1, __stack_top
    add     x1, x1, :lo12:__stack_top
    mov     sp, x1

    // Exceptions at this level land in boot_exception, which reports them.
    adrp    x1, exception_vectors
    add     x1, x1, :lo12:exception_vectors
    mrs     x2, CurrentEL
    ubfx    x2, x2, #2, #2
    cmp     x2, #2
    b.eq    8f
    b.hi    9f
    msr     vbar_el1, x1
    b       10f
8:  msr     vbar_el2, x1
    b       10f
9:  msr     vbar_el3, x1
10: isb

    mov     x0, x19
    mov     x1, x20
    mov     x2, x21
    bl      boot_main
11: wfe
    b       11b

// relocate_and_restart(x0 = new base, x1 = device tree, x2 = packed image's
// base): copies the boot stage's code and data (not .bss and stack, which are
// rebuilt) to x0 and starts it again there from primary_entry, telling it in x1
// where the packed payload stays. Never returns. The caller made sure the
// ranges do not overlap.
    .global relocate_and_restart
relocate_and_restart:
    adr     x3, _start
    adrp    x4, __bss_start
    add     x4, x4, :lo12:__bss_start
    sub     x5, x4, x3              // bytes of code and data (16-byte multiple)
    mov     x6, x0
12: ldp     x7, x8, [x3], #16
    stp     x7, x8, [x6], #16
    subs    x5, x5, #16
    b.gt    12b
    dsb     sy
    ic      iallu                   // the copy is code: no stale instructions
    dsb     sy
    isb
    adr     x3, _start
    adr     x4, primary_entry
    sub     x4, x4, x3
    add     x4, x4, x0              // primary_entry in the copy
    mov     x0, x1
    mov     x1, x2
    br      x4

// enter_partition(x0 = entry, x1 = device tree): jumps to an OS's entry with
// the arm64 boot protocol's registers: x0 = device tree, x1-x3 = 0. Never returns.
    .global enter_partition
enter_partition:
    mov     x4, x0
    mov     x0, x1
    mov     x1, xzr
    mov     x2, xzr
    mov     x3, xzr
    dsb     sy
    isb
    br      x4

    .macro  vector kind
    .balign 0x80
    mov     x0, #\kind
    b       vector_common
    .endm

    .section .text.vectors, "ax"
    .balign 0x800
exception_vectors:
    .irp    kind, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
    vector  \kind
    .endr
vector_common:
    bl      boot_exception
12: wfe
    b       12b
