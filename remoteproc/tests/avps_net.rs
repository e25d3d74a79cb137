//! The AVPS network framing (`remoteproc::avps::net`): frames of every size
//! cut into rpmsg messages and put back together, a full ring holding a
//! message back, and arbitrary peers: whatever messages arrive, reassembly
//! never panics, never returns more than a frame may hold, and a
//! well-formed frame after garbage comes through whole.

use proptest::prelude::*;
use remoteproc::avps::net::{self, FrameError, Outgoing, Reassembly, MAX_FRAME};
use remoteproc::rpmsg::MAX_PAYLOAD;

fn messages_of(frame: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Outgoing::new();
    assert!(out.load(frame));
    let mut msgs = Vec::new();
    assert!(out.pump(|m| {
        msgs.push(m.to_vec());
        true
    }));
    msgs
}

#[test]
fn a_full_ring_keeps_the_message_it_refused() {
    let frame: Vec<u8> = (0..1200).map(|i| i as u8).collect();
    let mut out = Outgoing::new();
    assert!(out.load(&frame));
    let mut msgs: Vec<Vec<u8>> = Vec::new();
    // Room for one message at a time.
    let mut room = 1;
    while !out.pump(|m| {
        if room == 0 {
            return false;
        }
        room -= 1;
        msgs.push(m.to_vec());
        true
    }) {
        assert!(!out.is_idle() && !out.load(&frame));
        room = 1;
    }
    assert_eq!(msgs, messages_of(&frame));
}

#[test]
fn frames_of_every_size_go_through_and_come_back_whole() {
    // Facts: rpmsg payloads are 496 bytes (512-byte buffers, 16-byte
    // header: Linux virtio_rpmsg_bus.c); virtio_net_hdr_v1 is 12 bytes
    // with num_buffers last (VIRTIO 1.x §5.1.6).
    assert_eq!(net::MAX_MESSAGES, 4);
    let mut r = Reassembly::new();
    for len in [14, 60, 484, 485, 496, 980, 981, 1500, net::MAX_FRAME] {
        let frame: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        let msgs = messages_of(&frame);
        assert_eq!(msgs.len(), (12 + len).div_ceil(496), "{len}");
        assert_eq!(
            u16::from_le_bytes([msgs[0][10], msgs[0][11]]) as usize,
            msgs.len()
        );
        assert!(msgs[..msgs.len() - 1].iter().all(|m| m.len() == 496));
        for m in &msgs[..msgs.len() - 1] {
            assert_eq!(r.push(m), Ok(None));
        }
        assert_eq!(r.push(msgs.last().unwrap()), Ok(Some(&frame[..])), "{len}");
    }
    assert!(!Outgoing::new().load(&[0; net::MAX_FRAME + 1]));
}

#[test]
fn a_legacy_single_message_frame_is_taken() {
    let mut msg = [0u8; 60];
    msg[12..18].copy_from_slice(&[0xff; 6]);
    let mut r = Reassembly::new();
    assert_eq!(r.push(&msg).unwrap().unwrap().len(), 48);
}

#[test]
fn hostile_headers_and_continuations_drop_the_frame_not_the_next() {
    let mut r = Reassembly::new();
    let mut msg = [0u8; 60];
    msg[0] = 1; // VIRTIO_NET_HDR_F_NEEDS_CSUM
    assert_eq!(r.push(&msg), Err(FrameError::Offload));
    assert_eq!(r.push(&[0; 11]), Err(FrameError::TooShort));
    assert_eq!(r.push(&[0; 20]), Err(FrameError::TooShort));
    let mut many = [0u8; 60];
    many[10..12].copy_from_slice(&9u16.to_le_bytes());
    assert_eq!(r.push(&many), Err(FrameError::TooLong));
    // Four messages announced, then more bytes than a frame may have.
    let mut four = [0u8; 496];
    four[10..12].copy_from_slice(&4u16.to_le_bytes());
    assert_eq!(r.push(&four), Ok(None));
    assert_eq!(r.push(&[0; 496]), Ok(None));
    assert_eq!(r.push(&[0; 496]), Ok(None));
    assert_eq!(r.push(&[0; 496]), Err(FrameError::TooLong));
    // An empty continuation.
    let mut two = [0u8; 496];
    two[10..12].copy_from_slice(&2u16.to_le_bytes());
    assert_eq!(r.push(&two), Ok(None));
    assert_eq!(r.push(&[]), Err(FrameError::BadContinuation));
    // And the next frame is whole again.
    let frame: Vec<u8> = (0..700).map(|i| i as u8).collect();
    let msgs = messages_of(&frame);
    assert_eq!(r.push(&msgs[0]), Ok(None));
    assert_eq!(r.push(&msgs[1]), Ok(Some(&frame[..])));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn garbage_then_a_frame(
        garbage in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..=MAX_PAYLOAD), 0..12),
        len in 14usize..=MAX_FRAME,
        seed in any::<u8>(),
    ) {
        let mut r = Reassembly::new();
        for m in &garbage {
            if let Ok(Some(frame)) = r.push(m) {
                prop_assert!(frame.len() >= 14 && frame.len() <= MAX_FRAME);
            }
        }
        // The peer may have left a frame half sent: a reset clears it, as
        // the link's reset does.
        r.clear();
        let frame: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(seed | 1)).collect();
        let msgs = messages_of(&frame);
        let (last, first) = msgs.split_last().unwrap();
        for m in first {
            prop_assert_eq!(r.push(m), Ok(None));
        }
        prop_assert_eq!(r.push(last), Ok(Some(&frame[..])));
    }
}
