//! The window's own checks: bounds, alignment, byte order, spans and ring
//! fields, at every alignment the copy loops distinguish.

use super::*;
use crate::virtqueue::{RingError, RingLayout};

fn words(n: usize) -> Vec<Word> {
    (0..n).map(|_| Word::new(0)).collect()
}

/// Every value in `0..=last`, or under Miri (which runs these loops a few
/// hundred times slower) only `few`: values that still reach every branch of
/// the copy loops (no turn, one turn and more of the four-word loop, each
/// tail, each misalignment).
fn sample(last: usize, few: &[usize]) -> Vec<usize> {
    if cfg!(miri) {
        few.to_vec()
    } else {
        (0..=last).collect()
    }
}

#[test]
fn scalars_round_trip_little_endian() {
    let mem = words(4);
    let w = Window::from_words(&mem);
    w.write_u32(4, 0x1122_3344).unwrap();
    w.write_u16(8, 0xaabb).unwrap();
    w.write_u64(16, 0x0102_0304_0506_0708).unwrap();
    let mut b = [0u8; 4];
    w.read_bytes(4, &mut b).unwrap();
    assert_eq!(b, [0x44, 0x33, 0x22, 0x11]);
    assert_eq!(w.read_u16(8).unwrap(), 0xaabb);
    assert_eq!(w.read_u64(16).unwrap(), 0x0102_0304_0506_0708);
}

#[test]
fn words_in_place_at_any_alignment_stop_at_the_span_end() {
    let mem = words(8);
    let w = Window::from_words(&mem);
    for start in [8, 11] {
        w.fill(0, 64, 0).unwrap();
        let s = w.span(start, 21).unwrap();
        // Two whole words fit in 21 bytes: the third is not written.
        assert_eq!(s.write_words(0, [1, 2, 3]).unwrap(), 16, "at {start}");
        assert_eq!(w.read_u8(start + 16).unwrap(), 0, "at {start}");
        let mut b = [0u8; 8];
        w.read_bytes(start + 8, &mut b).unwrap();
        assert_eq!(u64::from_le_bytes(b), 2, "at {start}: little-endian");
        assert_eq!(s.words(0).collect::<Vec<_>>(), [1, 2], "at {start}");
        assert_eq!(s.words(8).size_hint(), (1, Some(1)));
        assert_eq!(s.words(14).count(), 0, "at {start}: no partial word");
        assert_eq!(s.words(usize::MAX).count(), 0, "at {start}: past the end");
        assert_eq!(
            s.write_words(22, [9]),
            Err(WindowError::OutOfBounds { offset: 22, len: 0 })
        );
    }
}

#[test]
fn words_in_place_take_what_the_producer_gives_up_to_the_span_end() {
    let mem = words(16);
    let w = Window::from_words(&mem);
    // Spans of 0..=13 whole words, producers of 0..=13 words: every
    // split between the four-word turns and the tail of `fold`.
    for room in sample(13, &[0, 1, 4, 5, 9, 13]) {
        for given in sample(13, &[0, 3, 4, 8, 13]).into_iter().map(|g| g as u64) {
            w.fill(0, 128, 0xee).unwrap();
            let s = w.span(8, 8 * room).unwrap();
            let n = (given as usize).min(room);
            assert_eq!(s.write_words(0, 1..=given).unwrap(), 8 * n);
            let got: Vec<u64> = s.words(0).collect();
            let mut want: Vec<u64> = (1..=n as u64).collect();
            want.resize(room, u64::from_le_bytes([0xee; 8]));
            assert_eq!(got, want, "room {room}, given {given}");
            assert_eq!(w.read_u8(8 + 8 * room).unwrap(), 0xee, "past the span");
            let sum = s.words(0).fold(0u64, u64::wrapping_add);
            assert_eq!(sum, want.iter().copied().fold(0, u64::wrapping_add));
        }
    }
}

#[test]
fn indexed_words_fill_up_to_the_count_or_the_span_end_at_any_alignment() {
    let mem = words(16);
    let w = Window::from_words(&mem);
    // Aligned (the four-word turns and their tail) and not.
    for start in [8, 11] {
        for room in sample(9, &[0, 1, 4, 5, 9]) {
            for count in sample(9, &[0, 4, 5, 9]) {
                w.fill(0, 128, 0xee).unwrap();
                let s = w.span(start, 8 * room + 3).unwrap();
                let n = count.min(room);
                let k = |k: usize| 0x0101 * (k as u64 + 1);
                assert_eq!(s.write_words_with(0, count, k).unwrap(), 8 * n);
                let got: Vec<u64> = s.words(0).collect();
                let mut want: Vec<u64> = (0..n).map(k).collect();
                want.resize(room, u64::from_le_bytes([0xee; 8]));
                assert_eq!(got, want, "at {start}, room {room}, count {count}");
                assert_eq!(w.read_u8(start + 8 * n).unwrap(), 0xee, "past the words");
            }
        }
    }
    let s = w.span(8, 16).unwrap();
    assert_eq!(
        s.write_words_with(17, 1, |_| 0),
        Err(WindowError::OutOfBounds { offset: 17, len: 0 })
    );
}

#[test]
fn a_span_of_a_span_stays_inside_it() {
    let mem = words(8);
    let w = Window::from_words(&mem);
    let s = w.span(8, 32).unwrap();
    let t = s.sub(8, 16).unwrap();
    t.write_bytes(0, &[1; 16]).unwrap();
    assert_eq!((w.read_u8(15).unwrap(), w.read_u8(16).unwrap()), (0, 1));
    assert_eq!((w.read_u8(31).unwrap(), w.read_u8(32).unwrap()), (1, 0));
    assert_eq!(w.span_offset(&t), 16);
    assert_eq!(s.sub(32, 0).map(|t| t.len()), Ok(0));
    assert_eq!(
        s.sub(17, 16).map(|t| t.len()),
        Err(WindowError::OutOfBounds {
            offset: 17,
            len: 16
        })
    );
    assert!(s.sub(usize::MAX, 2).is_err());
}

#[test]
fn ring_fields_are_checked_once_and_indices_wrap_inside() {
    let mem = words(64); // 512 bytes: a 4-entry ring needs 64 + 14 + 38
    let w = Window::from_words(&mem);
    let layout = |desc, avail, used, size| RingLayout {
        size,
        desc,
        avail,
        used,
    };
    let f = w.ring_fields(layout(0, 64, 128, 4)).unwrap();
    f.set_descriptor_addr(5, 0xaa); // index 5 is descriptor 1
    f.set_descriptor_word(1, 0xbb);
    assert_eq!(f.descriptor(1), (0xaa, 0xbb));
    assert_eq!(w.read_u64(16).unwrap(), 0xaa);
    f.set_avail_slot(7, 9); // slot 3
    assert_eq!((f.avail_slot(3), w.read_u16(64 + 4 + 6).unwrap()), (9, 9));
    f.set_used_elem(6, 2, 40); // element 2
    assert_eq!(f.used_elem(2), (2, 40));
    assert_eq!(w.read_u32(128 + 4 + 16).unwrap(), 2);
    f.set_avail_idx(0x1234);
    f.set_used_idx(0x4321);
    assert_eq!((f.avail_idx(), f.used_idx()), (0x1234, 0x4321));
    assert_eq!(w.read_u16(66).unwrap(), 0x1234);
    // Anything that does not fit, or is misaligned, is refused up front.
    for (bad, why) in [
        (layout(0, 64, 480, 4), "used ring past the end"),
        (layout(8, 64, 128, 4), "descriptors not 16-aligned"),
        (layout(0, 65, 128, 4), "avail not 2-aligned"),
        (layout(0, 64, 130, 4), "used not 4-aligned"),
        (layout(0, 64, 128, 3), "size not a power of two"),
    ] {
        assert_eq!(w.ring_fields(bad).err(), Some(RingError::Layout), "{why}");
    }
}

#[test]
fn every_access_is_bounds_and_alignment_checked() {
    let mem = words(2);
    let w = Window::from_words(&mem);
    assert_eq!(
        w.read_u32(16),
        Err(WindowError::OutOfBounds { offset: 16, len: 4 })
    );
    assert_eq!(
        w.read_u32(14),
        Err(WindowError::OutOfBounds { offset: 14, len: 4 })
    );
    assert_eq!(w.read_u16(3), Err(WindowError::Misaligned { offset: 3 }));
    assert!(w.write_bytes(usize::MAX, &[1]).is_err());
    assert!(w.read_bytes(10, &mut [0; 7]).is_err());
    assert!(w.fill(0, 17, 0).is_err());
    assert!(w.slice(8, 9).is_err());
}

#[test]
fn byte_copies_of_every_alignment_and_length() {
    let mem = words(16);
    let w = Window::from_words(&mem);
    // Up to three turns of the four-word loop and every tail, at every
    // alignment of the window side and of the private side (`pad`).
    for off in sample(15, &[0, 1, 7, 8, 13]) {
        for len in sample(99, &[0, 1, 7, 8, 9, 31, 32, 33, 41, 64, 71, 99]) {
            for pad in [0, 1, 3, 4, 7] {
                let mut src = vec![0u8; pad + len];
                for (i, b) in src[pad..].iter_mut().enumerate() {
                    *b = (i * 7 + off) as u8;
                }
                w.fill(0, 128, 0xee).unwrap();
                w.write_bytes(off, &src[pad..]).unwrap();
                let mut dst = vec![0x11u8; pad + len + 1];
                w.read_bytes(off, &mut dst[pad..pad + len]).unwrap();
                assert_eq!(
                    src[pad..],
                    dst[pad..pad + len],
                    "at {off}, {len} bytes, {pad}"
                );
                assert!(dst[..pad].iter().all(|&b| b == 0x11) && dst[pad + len] == 0x11);
                if off > 0 {
                    assert_eq!(w.read_u8(off - 1).unwrap(), 0xee);
                }
                assert_eq!(w.read_u8(off + len).unwrap(), 0xee);
            }
        }
    }
}

#[test]
fn bus_addresses_translate_only_inside() {
    let mem = words(16);
    let w = Window::from_words(&mem).with_bus_address(0x8000_0000);
    assert_eq!(w.offset_of(0x8000_0010, 16), Ok(16));
    assert_eq!(w.offset_of(0x8000_0000, 128), Ok(0));
    assert!(w.offset_of(0x8000_0001, 128).is_err());
    assert!(w.offset_of(0x7fff_ffff, 1).is_err());
    assert!(w.offset_of(u64::MAX, 2).is_err());
    assert!(w.offset_of(0x8000_0000, u64::MAX).is_err());
    let sub = w.slice(64, 64).unwrap();
    assert_eq!(sub.bus_address(), 0x8000_0040);
    sub.write_u8(0, 9).unwrap();
    assert_eq!(w.read_u8(64).unwrap(), 9);
}
