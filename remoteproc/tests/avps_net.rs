//! The AVPS network framing against arbitrary peers: whatever messages
//! arrive, reassembly never panics, never returns more than a frame may
//! hold, and a well-formed frame after any garbage comes through whole.

use proptest::prelude::*;
use remoteproc::avps::net::{Outgoing, Reassembly, MAX_FRAME};
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
