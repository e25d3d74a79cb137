//! Data-cache maintenance by address range, to the point of coherency: what the
//! boot stage wrote (images, device trees, cleared windows) must be in memory
//! before cores that start with their caches off read it.

/// Cleans and invalidates `[start, start + len)` to the point of coherency
/// (`DC CIVAC` by line, then `DSB SY`). Safe with the MMU off.
#[cfg(target_arch = "aarch64")]
pub fn clean_invalidate(start: usize, len: usize) {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effect.
    unsafe { core::arch::asm!("mrs {}, ctr_el0", out(reg) ctr) };
    // DminLine: log2 of the smallest data cache line in words.
    let line = 4usize << ((ctr >> 16) & 0xf);
    let mut at = start & !(line - 1);
    let end = start.saturating_add(len);
    while at < end {
        // SAFETY: cleaning and invalidating a line by address writes dirty data
        // back and drops the line; it changes no memory contents.
        unsafe { core::arch::asm!("dc civac, {}", in(reg) at) };
        at += line;
    }
    // SAFETY: a barrier has no other effect.
    unsafe { core::arch::asm!("dsb sy") };
}
