//! rpmsg-lite's environment (`env_*`, `rpmsg_env.h`) and platform
//! (`platform_*`, our `host/rpmsg_platform.h`) layers for a hosted build, in
//! Rust: bare-metal style (locks are no-ops, one thread per rpmsg-lite
//! instance), with simulated interrupts.
//!
//! Interrupts: each virtqueue id (`RL_GET_VQ_ID(link, queue)`) is an interrupt
//! line. The peer raises it ([`raise`], or ringing an [`IrqLine`] doorbell);
//! it stays pending until the thread that owns the link ([`own_link`]) takes
//! it, at [`service`] or while rpmsg-lite waits in `env_sleep_msec` /
//! `env_wait_for_link_up`, by running `env_isr(vq_id)` as rpmsg-lite's ISR
//! would (`virtqueue_notification` on the registered virtqueue). So the ISR
//! runs on the thread that owns the instance, never concurrently with it,
//! which is what the no-op locks of the bare-metal environment assume. A line
//! raised while no handler is registered is dropped and counted (a kick sent
//! before rpmsg-lite initialised is lost, as on hardware).
//!
//! Kicks from rpmsg-lite (`platform_notify`) are counted per virtqueue id;
//! our side polls its rings and reads the counts ([`kicks`]). When two
//! rpmsg-lite instances talk to each other (the transport benchmark), each on
//! its own link id, [`connect`] wires one's kicks to the other's interrupt
//! lines.
//!
//! Addresses: rpmsg-lite writes 32-bit "physical" addresses into descriptors
//! (`env_map_vatopa`). Each shared window is registered with a bus address
//! below 4 GiB ([`add_window`]); `vatopa`/`patova` translate between that and
//! where the window is mapped in this process (anywhere in the 64-bit address
//! space), exactly as our `Window::with_bus_address` does on our side.

use core::ffi::{c_char, c_int, c_void};
use rpmsg_lite_sys::{virtqueue, virtqueue_notification};
use shmem::doorbell::Doorbell;
use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const LINES: usize = rpmsg_lite_sys::RL_PLATFORM_MAX_ISR_COUNT as usize;

static HANDLER: [AtomicPtr<c_void>; LINES] = [const { AtomicPtr::new(ptr::null_mut()) }; LINES];
static ENABLED: [AtomicBool; LINES] = [const { AtomicBool::new(false) }; LINES];
static PENDING: [AtomicBool; LINES] = [const { AtomicBool::new(false) }; LINES];
static DROPPED: [AtomicU32; LINES] = [const { AtomicU32::new(0) }; LINES];
static KICKS: [AtomicU32; LINES] = [const { AtomicU32::new(0) }; LINES];
/// The line a kick on this virtqueue id raises, plus one (0: none).
static ROUTE: [AtomicU32; LINES] = [const { AtomicU32::new(0) }; LINES];

/// (mapped base, length, bus address) of every registered window.
static WINDOWS: Mutex<Vec<(usize, usize, u32)>> = Mutex::new(Vec::new());

thread_local! {
    /// Interrupt lines this thread services (bit per virtqueue id).
    static OWNED: Cell<u32> = const { Cell::new(0) };
    static IN_ISR: Cell<bool> = const { Cell::new(false) };
}

/// The virtqueue id of `queue` on `link` (`RL_GET_VQ_ID`).
pub(crate) fn vq_id(link: u32, queue: u32) -> usize {
    ((queue & 1) | (link << 1)) as usize
}

/// Makes this thread the one that takes `link`'s interrupts.
pub(crate) fn own_link(link: u32) {
    OWNED.with(|o| o.set(o.get() | 3 << (2 * link)));
}

/// Registers a shared window mapped at `base` for `len` bytes, which the
/// peer addresses as `bus`.
pub(crate) fn add_window(base: *mut u8, len: usize, bus: u32) {
    assert!(
        u64::from(bus) + len as u64 <= 1 << 32,
        "bus address above 4 GiB"
    );
    lock_windows().push((base as usize, len, bus));
}

/// Forgets the window mapped at `base`.
pub(crate) fn remove_window(base: *mut u8) {
    lock_windows().retain(|w| w.0 != base as usize);
}

fn lock_windows() -> std::sync::MutexGuard<'static, Vec<(usize, usize, u32)>> {
    WINDOWS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Wires two rpmsg-lite instances on links `a` and `b` together: a kick on
/// queue `q` of either raises the other's line for queue `q` (both index the
/// same two vrings of one window). Clears what is still pending on those
/// lines from an earlier pair: a stale kick would bring a fresh remote up
/// before its master has filled the rings.
pub(crate) fn connect(a: u32, b: u32) {
    for q in 0..2 {
        let (x, y) = (vq_id(a, q), vq_id(b, q));
        PENDING[x].store(false, Ordering::Release);
        PENDING[y].store(false, Ordering::Release);
        ROUTE[x].store(y as u32 + 1, Ordering::Release);
        ROUTE[y].store(x as u32 + 1, Ordering::Release);
    }
}

/// Raises interrupt line `vq` (the peer kicked that virtqueue).
pub(crate) fn raise(vq: usize) {
    if HANDLER[vq].load(Ordering::Acquire).is_null() {
        DROPPED[vq].fetch_add(1, Ordering::Relaxed);
    } else {
        PENDING[vq].store(true, Ordering::Release);
    }
}

/// How many times rpmsg-lite kicked virtqueue `vq` (`platform_notify`).
pub(crate) fn kicks(vq: usize) -> u32 {
    KICKS[vq].load(Ordering::Acquire)
}

/// Raises of `vq` lost because no handler was registered yet.
pub(crate) fn dropped(vq: usize) -> u32 {
    DROPPED[vq].load(Ordering::Relaxed)
}

/// Runs the handler of every pending, enabled line this thread owns.
/// Returns how many ran.
pub(crate) fn service() -> usize {
    let owned = OWNED.with(Cell::get);
    let mut ran = 0;
    for vq in 0..LINES {
        if owned & (1 << vq) != 0
            && ENABLED[vq].load(Ordering::Acquire)
            // Read before the swap: a poll that finds nothing must not write
            // the shared line (an idle interrupt controller costs the peer
            // nothing either).
            && PENDING[vq].load(Ordering::Relaxed)
            && PENDING[vq].swap(false, Ordering::AcqRel)
        {
            env_isr(vq as u32);
            ran += 1;
        }
    }
    ran
}

/// A doorbell that raises rpmsg-lite's interrupt line for a queue of `link`.
#[derive(Debug)]
pub(crate) struct IrqLine {
    pub(crate) link: u32,
}

impl Doorbell for IrqLine {
    fn ring(&mut self, queue: u16) {
        raise(vq_id(self.link, u32::from(queue)));
    }
}

// ---- environment layer (rpmsg_env.h, RL_USE_ENVIRONMENT_CONTEXT = 0) ----

#[no_mangle]
extern "C" fn env_init() -> i32 {
    platform_init()
}

#[no_mangle]
extern "C" fn env_deinit() -> i32 {
    platform_deinit()
}

#[no_mangle]
extern "C" fn env_allocate_memory(size: u32) -> *mut c_void {
    // SAFETY: malloc has no preconditions; rpmsg-lite checks for NULL.
    unsafe { libc::malloc(size as usize) }
}

/// # Safety
/// `p` is NULL or came from `env_allocate_memory` and is not used again.
#[no_mangle]
unsafe extern "C" fn env_free_memory(p: *mut c_void) {
    // SAFETY: the caller's contract is free's.
    unsafe { libc::free(p) }
}

/// # Safety
/// `p` is valid for writes of `size` bytes.
#[no_mangle]
unsafe extern "C" fn env_memset(p: *mut c_void, value: i32, size: u32) {
    // SAFETY: the caller's contract.
    unsafe { ptr::write_bytes(p.cast::<u8>(), value as u8, size as usize) }
}

/// # Safety
/// `src` readable and `dst` writable for `len` bytes.
#[no_mangle]
unsafe extern "C" fn env_memcpy(dst: *mut c_void, src: *const c_void, len: u32) {
    // SAFETY: the caller's contract; `copy` allows overlap, like memmove.
    unsafe { ptr::copy(src.cast::<u8>(), dst.cast::<u8>(), len as usize) }
}

/// # Safety
/// Both are NUL-terminated strings.
#[no_mangle]
unsafe extern "C" fn env_strcmp(a: *const c_char, b: *const c_char) -> i32 {
    // SAFETY: the caller's contract is strcmp's.
    unsafe { libc::strcmp(a, b) }
}

/// # Safety
/// `dest` writable for `len` bytes, `src` a string or `len` readable bytes.
#[no_mangle]
unsafe extern "C" fn env_strncpy(dest: *mut c_char, src: *const c_char, len: u32) {
    // SAFETY: the caller's contract is strncpy's.
    unsafe { libc::strncpy(dest, src, len as usize) };
}

/// # Safety
/// Both readable up to `len` bytes or their NUL.
#[no_mangle]
unsafe extern "C" fn env_strncmp(a: *const c_char, b: *const c_char, len: u32) -> i32 {
    // SAFETY: the caller's contract is strncmp's.
    unsafe { libc::strncmp(a, b, len as usize) }
}

#[no_mangle]
extern "C" fn env_mb() {
    fence(Ordering::SeqCst);
}

#[no_mangle]
extern "C" fn env_rmb() {
    fence(Ordering::SeqCst);
}

#[no_mangle]
extern "C" fn env_wmb() {
    fence(Ordering::SeqCst);
}

#[no_mangle]
extern "C" fn env_map_vatopa(address: *mut c_void) -> u32 {
    platform_vatopa(address) as u32
}

#[no_mangle]
extern "C" fn env_map_patova(address: u32) -> *mut c_void {
    platform_patova(address as usize)
}

/// # Safety
/// `lock` is writable.
#[no_mangle]
unsafe extern "C" fn env_create_mutex(lock: *mut *mut c_void, _count: i32) -> i32 {
    // Bare metal: one thread per instance, so a lock only needs to be non-NULL.
    // SAFETY: the caller's contract.
    unsafe { *lock = lock.cast() };
    0
}

#[no_mangle]
extern "C" fn env_delete_mutex(_lock: *mut c_void) {}

#[no_mangle]
extern "C" fn env_lock_mutex(_lock: *mut c_void) {}

#[no_mangle]
extern "C" fn env_unlock_mutex(_lock: *mut c_void) {}

#[no_mangle]
extern "C" fn env_sleep_msec(num_msec: u32) {
    platform_time_delay(num_msec);
}

#[no_mangle]
extern "C" fn env_register_isr(vector_id: u32, data: *mut c_void) {
    if let Some(h) = HANDLER.get(vector_id as usize) {
        h.store(data, Ordering::Release);
    }
}

#[no_mangle]
extern "C" fn env_unregister_isr(vector_id: u32) {
    if let Some(h) = HANDLER.get(vector_id as usize) {
        h.store(ptr::null_mut(), Ordering::Release);
    }
}

#[no_mangle]
extern "C" fn env_enable_interrupt(vector_id: u32) {
    platform_interrupt_enable(vector_id);
}

#[no_mangle]
extern "C" fn env_disable_interrupt(vector_id: u32) {
    platform_interrupt_disable(vector_id);
}

#[no_mangle]
extern "C" fn env_map_memory(pa: u32, va: u32, size: u32, flags: u32) {
    platform_map_mem_region(va, pa, size, flags);
}

#[no_mangle]
extern "C" fn env_disable_cache() {
    platform_cache_all_flush_invalidate();
    platform_cache_disable();
}

#[no_mangle]
extern "C" fn env_cache_flush(data: *mut c_void, len: u32) {
    platform_cache_flush(data, len);
}

#[no_mangle]
extern "C" fn env_cache_invalidate(data: *mut c_void, len: u32) {
    platform_cache_invalidate(data, len);
}

/// # Safety
/// `link_state` is readable for as long as this waits.
#[no_mangle]
unsafe extern "C" fn env_wait_for_link_up(
    link_state: *const u32,
    _link_id: u32,
    timeout_ms: u32,
) -> u32 {
    let start = Instant::now();
    loop {
        // SAFETY: the caller's contract; the ISR (run on this thread by
        // `platform_time_delay`) writes it, hence volatile.
        if unsafe { ptr::read_volatile(link_state) } != 0 {
            return 1;
        }
        if timeout_ms != u32::MAX && start.elapsed() >= Duration::from_millis(timeout_ms.into()) {
            return 0;
        }
        platform_time_delay(1);
    }
}

#[no_mangle]
extern "C" fn env_tx_callback(_link_id: u32) {}

/// rpmsg-lite's interrupt entry: runs the virtqueue registered for `vector`.
#[no_mangle]
extern "C" fn env_isr(vector: u32) {
    let Some(h) = HANDLER.get(vector as usize) else {
        return;
    };
    let vq = h.load(Ordering::Acquire).cast::<virtqueue>();
    if vq.is_null() {
        return;
    }
    IN_ISR.with(|f| f.set(true));
    // SAFETY: `vq` was registered by rpmsg-lite (platform_init_interrupt) and
    // stays valid until it unregisters it (deinit, on this same thread).
    unsafe { virtqueue_notification(vq) };
    IN_ISR.with(|f| f.set(false));
}

/// `RL_ASSERT` of our `host/rpmsg_config.h`.
///
/// # Safety
/// `file` is a NUL-terminated string.
#[no_mangle]
unsafe extern "C" fn rl_host_assert_failed(file: *const c_char, line: c_int) {
    // SAFETY: the caller's contract (`__FILE__`).
    let file = unsafe { std::ffi::CStr::from_ptr(file) };
    eprintln!("rpmsg-lite assertion failed at {file:?}:{line}");
    std::process::abort();
}

// ---- platform layer (host/rpmsg_platform.h) ----

#[no_mangle]
extern "C" fn platform_init() -> i32 {
    0
}

#[no_mangle]
extern "C" fn platform_deinit() -> i32 {
    0
}

#[no_mangle]
extern "C" fn platform_init_interrupt(vector_id: u32, isr_data: *mut c_void) -> i32 {
    env_register_isr(vector_id, isr_data);
    0
}

#[no_mangle]
extern "C" fn platform_deinit_interrupt(vector_id: u32) -> i32 {
    platform_interrupt_disable(vector_id);
    env_unregister_isr(vector_id);
    0
}

#[no_mangle]
extern "C" fn platform_interrupt_enable(vector_id: u32) -> i32 {
    if let Some(e) = ENABLED.get(vector_id as usize) {
        e.store(true, Ordering::Release);
    }
    vector_id as i32
}

#[no_mangle]
extern "C" fn platform_interrupt_disable(vector_id: u32) -> i32 {
    if let Some(e) = ENABLED.get(vector_id as usize) {
        e.store(false, Ordering::Release);
    }
    vector_id as i32
}

#[no_mangle]
extern "C" fn platform_in_isr() -> i32 {
    IN_ISR.with(Cell::get).into()
}

#[no_mangle]
extern "C" fn platform_notify(vector_id: u32) {
    if let Some(k) = KICKS.get(vector_id as usize) {
        k.fetch_add(1, Ordering::Release);
        match ROUTE[vector_id as usize].load(Ordering::Acquire) {
            0 => {}
            line => raise(line as usize - 1),
        }
    }
}

/// Waits `num_msec`, taking this thread's interrupts meanwhile (a bare-metal
/// delay loop is interrupted by the mailbox IRQ the same way).
#[no_mangle]
extern "C" fn platform_time_delay(num_msec: u32) {
    let end = Instant::now() + Duration::from_millis(num_msec.into());
    loop {
        service();
        if Instant::now() >= end {
            break;
        }
        std::thread::yield_now();
    }
}

#[no_mangle]
extern "C" fn platform_map_mem_region(_vrt: u32, _phy: u32, _size: u32, _flags: u32) {}

#[no_mangle]
extern "C" fn platform_cache_all_flush_invalidate() {}

#[no_mangle]
extern "C" fn platform_cache_disable() {}

#[no_mangle]
extern "C" fn platform_cache_flush(_data: *mut c_void, _len: u32) {}

#[no_mangle]
extern "C" fn platform_cache_invalidate(_data: *mut c_void, _len: u32) {}

#[no_mangle]
extern "C" fn platform_vatopa(addr: *mut c_void) -> usize {
    let va = addr as usize;
    match lock_windows().iter().find(|w| va >= w.0 && va - w.0 < w.1) {
        Some(&(base, _, bus)) => bus as usize + (va - base),
        None => {
            eprintln!("rpmsg-lite translated {va:#x}, outside every shared window");
            std::process::abort();
        }
    }
}

#[no_mangle]
extern "C" fn platform_patova(addr: usize) -> *mut c_void {
    match lock_windows()
        .iter()
        .find(|w| addr >= w.2 as usize && addr - (w.2 as usize) < w.1)
    {
        Some(&(base, _, bus)) => (base + (addr - bus as usize)) as *mut c_void,
        None => {
            eprintln!("rpmsg-lite read bus address {addr:#x}, outside every shared window");
            std::process::abort();
        }
    }
}
