//! `avps-bridge read-bench DEVICE [MIB]`: how fast a block device reads,
//! bypassing the page cache (`O_DIRECT`): 1 MiB sequential reads over its
//! first MIB MiB, then as many 4 KiB reads at random 4 KiB offsets in the
//! same span. For `cargo xtask bench blk`, which sets a disk exported over a
//! link (`/dev/avps/<link>/block`) against one QEMU attaches directly.

use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::time::Instant;

const MIB: usize = 1 << 20;
const PAGE: usize = 4096;

/// A buffer `O_DIRECT` takes: page-aligned.
struct Aligned {
    ptr: *mut u8,
    len: usize,
}

impl Aligned {
    fn new(len: usize) -> Self {
        let layout = std::alloc::Layout::from_size_align(len, PAGE).expect("a page-aligned layout");
        // SAFETY: a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "out of memory");
        Aligned { ptr, len }
    }

    fn bytes(&mut self, n: usize) -> &mut [u8] {
        // SAFETY: `ptr` holds `len` bytes we own; `n` is clipped to it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, n.min(self.len)) }
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        let layout = std::alloc::Layout::from_size_align(self.len, PAGE).expect("as in new");
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, layout) };
    }
}

/// Runs the measurement; the process exit status.
pub(crate) fn run(args: &[String]) -> i32 {
    let Some(device) = args.first() else {
        eprintln!("avps-bridge read-bench: which device? (for example /dev/vda)");
        return 2;
    };
    let mib = match args.get(1).map(|m| m.parse::<usize>()) {
        None => 8,
        Some(Ok(m)) if m > 0 => m,
        _ => {
            eprintln!("avps-bridge read-bench: the span is a whole number of MiB, at least 1");
            return 2;
        }
    };
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(device)
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("avps-bridge read-bench: {device}: {e}");
            return 1;
        }
    };
    let mut buf = Aligned::new(MIB);
    let start = Instant::now();
    for i in 0..mib {
        if let Err(e) = file.read_exact_at(buf.bytes(MIB), (i * MIB) as u64) {
            eprintln!("avps-bridge read-bench: {device}: MiB {i}: {e}");
            return 1;
        }
    }
    let seq = mib as f64 / start.elapsed().as_secs_f64();
    let reads = mib * MIB / PAGE;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let start = Instant::now();
    for _ in 0..reads {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = (x as usize % reads) * PAGE;
        if let Err(e) = file.read_exact_at(buf.bytes(PAGE), at as u64) {
            eprintln!("avps-bridge read-bench: {device}: 4 KiB at {at}: {e}");
            return 1;
        }
    }
    let iops = reads as f64 / start.elapsed().as_secs_f64();
    println!(
        "read-bench {device}: sequential 1 MiB reads {seq:.2} MiB/s; random 4 KiB reads {iops:.0} per second ({reads} reads over {mib} MiB)"
    );
    0
}
