//! Checkable test messages, shared by the stress test and the rpmsg-lite
//! and OpenAMP interop tests (included by path): a message's length and
//! bytes follow from its direction and sequence number alone, so a receiver
//! checks each without a copy of what was sent.
#![allow(dead_code, reason = "each test uses part of it")]

/// splitmix64's finaliser: a cheap, well-spread hash.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// FNV-1a.
pub(crate) fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Payload length of message `seq` in direction `dir`: 12..=496.
pub(crate) fn length(dir: u64, seq: u64) -> usize {
    12 + (mix(seq ^ (dir << 62)) % 485) as usize
}

/// Message `seq` of direction `dir` into `buf`: its sequence number, bytes
/// from an xorshift seeded by both, and a checksum; returns its length.
pub(crate) fn fill(dir: u64, seq: u64, buf: &mut [u8; 512]) -> usize {
    let n = length(dir, seq);
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    let mut x = mix(seq.wrapping_mul(3) ^ dir);
    for b in &mut buf[8..n - 4] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let c = checksum(&buf[..n - 4]);
    buf[n - 4..n].copy_from_slice(&c.to_le_bytes());
    n
}

/// Whether `msg` is exactly message `seq` of direction `dir`.
pub(crate) fn check(dir: u64, seq: u64, msg: &[u8]) -> bool {
    let mut want = [0u8; 512];
    let n = fill(dir, seq, &mut want);
    msg == &want[..n]
}
