//! The virtio-msg codec: byte offsets written as facts from the draft
//! (Linaro virtio-msg-spec, Feb 2026), every message round-tripped, and
//! hostile bytes refused without a panic.

use proptest::prelude::*;
use remoteproc::virtio_msg::{
    decode, encode, encode_response, Bus, CodecError, Config, DeviceInfo, Header, Message,
    Transport, Vqueue, Words, HEADER_SIZE, MAX_CONFIG_DATA, MIN_SIZE,
};

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Header: type u8, msg_id u8, dev_num le16, token le16, msg_size le16.
#[test]
fn header_layout() {
    let mut out = [0u8; 64];
    let n = encode(
        &Message::Transport(Transport::SetDeviceStatus(0xf)),
        0x1234,
        0xbeef,
        &mut out,
    )
    .unwrap();
    assert_eq!(n, HEADER_SIZE + 4);
    assert_eq!(out[0], 0, "type: transport request");
    assert_eq!(out[1], 0x08, "SET_DEVICE_STATUS");
    assert_eq!(u16::from_le_bytes([out[2], out[3]]), 0x1234, "dev_num");
    assert_eq!(u16::from_le_bytes([out[4], out[5]]), 0xbeef, "token");
    assert_eq!(u16::from_le_bytes([out[6], out[7]]), 12, "msg_size");
    assert_eq!(le32(&out, 8), 0xf, "status");
    let (h, _) = decode(&out[..n]).unwrap();
    let mut resp = [0u8; 64];
    let m = encode_response(
        &Message::Transport(Transport::DeviceStatus(0xf)),
        &h,
        &mut resp,
    )
    .unwrap();
    assert_eq!(resp[0], 1, "type: transport response");
    assert_eq!(resp[1], 0x08, "the request's id");
    assert_eq!(&resp[2..6], &out[2..6], "dev_num and token echoed");
    assert_eq!(m, 12);
}

/// GET_DEVICE_INFO's answer: device_id, vendor_id, uuid[16],
/// num_feature_blocks, config_size, max_virtqueues, admin_vq_start,
/// admin_vq_count: 44 bytes, the largest fixed payload (MIN_SIZE 52).
#[test]
fn device_info_layout() {
    let info = DeviceInfo {
        device_id: 2,
        vendor_id: 0x554d_4551,
        uuid: [7; 16],
        feature_blocks: 2,
        config_size: 60,
        max_virtqueues: 1,
        admin_vq_start: 0,
        admin_vq_count: 0,
    };
    let mut out = [0u8; 64];
    let n = encode(
        &Message::Transport(Transport::DeviceInfo(info)),
        0,
        1,
        &mut out,
    )
    .unwrap();
    assert_eq!(n, MIN_SIZE);
    assert_eq!((out[0], out[1]), (1, 0x02));
    assert_eq!(le32(&out, 8), 2);
    assert_eq!(le32(&out, 12), 0x554d_4551);
    assert_eq!(&out[16..32], &[7; 16]);
    assert_eq!([le32(&out, 32), le32(&out, 36), le32(&out, 40)], [2, 60, 1]);
}

/// SET_VQUEUE: index, flags, size, reserved (le32), then descriptor,
/// driver and device addresses (le64). GET_VQUEUE's answer: index,
/// max_size, cur_size, flags, then the three addresses.
#[test]
fn vqueue_layouts() {
    let q = Vqueue {
        index: 1,
        max_size: 256,
        size: 128,
        flags: 1,
        descriptors: 0x7000_1000,
        driver: 0x7000_1800,
        device: 0x7000_2000,
    };
    let mut out = [0u8; 64];
    let n = encode(&Message::Transport(Transport::SetVqueue(q)), 3, 9, &mut out).unwrap();
    assert_eq!(n, 8 + 16 + 24);
    assert_eq!(out[1], 0x0A);
    assert_eq!(
        [
            le32(&out, 8),
            le32(&out, 12),
            le32(&out, 16),
            le32(&out, 20)
        ],
        [1, 1, 128, 0]
    );
    assert_eq!(
        [le64(&out, 24), le64(&out, 32), le64(&out, 40)],
        [0x7000_1000, 0x7000_1800, 0x7000_2000]
    );
    let n = encode(
        &Message::Transport(Transport::VqueueState(q)),
        3,
        9,
        &mut out,
    )
    .unwrap();
    assert_eq!((out[0], out[1], n), (1, 0x09, 48));
    assert_eq!(
        [
            le32(&out, 8),
            le32(&out, 12),
            le32(&out, 16),
            le32(&out, 20)
        ],
        [1, 256, 128, 1]
    );
}

/// Events: EVENT_AVAIL {vq, next_offset}, EVENT_USED {vq}, EVENT_CONFIG
/// {status, generation, offset, length, data}; bus EVENT_DEVICE {dev_num,
/// dev_state}, GET_DEVICES {offset, count} -> {offset, next, count,
/// bitmap}.
#[test]
fn event_and_bus_layouts() {
    let mut out = [0u8; 64];
    let n = encode(
        &Message::Transport(Transport::EventAvail { vq: 2, next: 77 }),
        1,
        0,
        &mut out,
    )
    .unwrap();
    assert_eq!(
        (out[1], n, le32(&out, 8), le32(&out, 12)),
        (0x41, 16, 2, 77)
    );
    let n = encode(
        &Message::Transport(Transport::EventUsed { vq: 5 }),
        1,
        0,
        &mut out,
    )
    .unwrap();
    assert_eq!((out[1], n, le32(&out, 8)), (0x42, 12, 5));
    let n = encode(
        &Message::Transport(Transport::EventConfig {
            status: 0x40,
            config: Config {
                generation: 3,
                offset: 8,
                data: &[1, 2],
            },
        }),
        1,
        0,
        &mut out,
    )
    .unwrap();
    assert_eq!(out[1], 0x40);
    assert_eq!(
        [
            le32(&out, 8),
            le32(&out, 12),
            le32(&out, 16),
            le32(&out, 20)
        ],
        [0x40, 3, 8, 2]
    );
    assert_eq!((&out[24..26], n), (&[1u8, 2][..], 26));
    let n = encode(
        &Message::Bus(Bus::EventDevice {
            dev_num: 4,
            state: 1,
        }),
        0,
        0,
        &mut out,
    )
    .unwrap();
    assert_eq!((out[0], out[1], n), (2, 0x40, 12));
    let n = encode(
        &Message::Bus(Bus::Devices {
            offset: 0,
            next: 0,
            count: 16,
            bitmap: &[0b101, 0],
        }),
        0,
        0,
        &mut out,
    )
    .unwrap();
    assert_eq!((out[0], out[1], n), (3, 0x02, 16));
    assert_eq!(&out[8..16], &[0, 0, 0, 0, 16, 0, 0b101, 0]);
}

fn every_message() -> Vec<Message<'static>> {
    use Transport as T;
    static FEATURES: [u8; 8] = [1, 0, 0, 0x30, 1, 0, 0, 0];
    let cfg = Config {
        generation: 9,
        offset: 4,
        data: b"config",
    };
    let q = Vqueue {
        index: 0,
        max_size: 0,
        size: 64,
        flags: 1,
        descriptors: 1,
        driver: 2,
        device: 3,
    };
    vec![
        Message::Transport(T::GetDeviceInfo),
        Message::Transport(T::DeviceInfo(DeviceInfo::default())),
        Message::Transport(T::GetDeviceFeatures { block: 0, count: 2 }),
        Message::Transport(T::DeviceFeatures {
            block: 0,
            features: Words::new(&FEATURES),
        }),
        Message::Transport(T::SetDriverFeatures {
            block: 1,
            features: Words::new(&FEATURES[4..]),
        }),
        Message::Transport(T::DriverFeaturesSet),
        Message::Transport(T::GetConfig { offset: 0, len: 8 }),
        Message::Transport(T::ConfigRead(cfg)),
        Message::Transport(T::SetConfig(cfg)),
        Message::Transport(T::ConfigWritten(cfg)),
        Message::Transport(T::GetDeviceStatus),
        Message::Transport(T::SetDeviceStatus(7)),
        Message::Transport(T::DeviceStatus(7)),
        Message::Transport(T::GetVqueue(3)),
        Message::Transport(T::VqueueState(Vqueue { max_size: 256, ..q })),
        Message::Transport(T::SetVqueue(q)),
        Message::Transport(T::VqueueSet),
        Message::Transport(T::ResetVqueue(0)),
        Message::Transport(T::VqueueReset),
        Message::Transport(T::GetShm(0)),
        Message::Transport(T::Shm {
            id: 0,
            len: 0x1000,
            addr: 0x7000_0000,
        }),
        Message::Transport(T::EventConfig {
            status: 15,
            config: cfg,
        }),
        Message::Transport(T::EventAvail { vq: 0, next: 1 }),
        Message::Transport(T::EventUsed { vq: 1 }),
        Message::Bus(Bus::GetDevices {
            offset: 0,
            count: 64,
        }),
        Message::Bus(Bus::Devices {
            offset: 0,
            next: 0,
            count: 3,
            bitmap: &[0b111],
        }),
        Message::Bus(Bus::Ping(0xdead_beef)),
        Message::Bus(Bus::EventDevice {
            dev_num: 1,
            state: 2,
        }),
    ]
}

#[test]
fn every_message_round_trips() {
    for m in every_message() {
        let mut out = [0u8; 512];
        let n = encode(&m, 5, 42, &mut out).unwrap();
        let (h, back) = decode(&out[..n]).unwrap_or_else(|e| panic!("{m:?}: {e:?}"));
        assert_eq!(back, m);
        assert_eq!((h.dev_num, h.token, usize::from(h.size)), (5, 42, n));
        // Every prefix is refused, never misread.
        for cut in 0..n {
            assert!(decode(&out[..cut]).is_err(), "{m:?} cut at {cut}");
        }
    }
}

#[test]
fn declared_parts_must_fit_the_message() {
    let mut out = [0u8; 64];
    // A feature count past the end of the payload.
    let n = encode(
        &Message::Transport(Transport::SetDriverFeatures {
            block: 0,
            features: Words::new(&[0; 8]),
        }),
        0,
        0,
        &mut out,
    )
    .unwrap();
    out[12..16].copy_from_slice(&1000u32.to_le_bytes());
    assert_eq!(decode(&out[..n]), Err(CodecError::Payload(0x04)));
    out[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(decode(&out[..n]), Err(CodecError::Payload(0x04)));
    // msg_size disagreeing with what arrived.
    out[6] = 99;
    assert_eq!(
        decode(&out[..n]),
        Err(CodecError::Size {
            claimed: 99,
            actual: n
        })
    );
    // A config length past the end.
    let n = encode(
        &Message::Transport(Transport::SetConfig(Config {
            generation: 0,
            offset: 0,
            data: &[1; 4],
        })),
        0,
        0,
        &mut out,
    )
    .unwrap();
    out[16..20].copy_from_slice(&5u32.to_le_bytes());
    assert_eq!(decode(&out[..n]), Err(CodecError::Payload(0x06)));
    // Unknown ids, and a response to an event.
    let mut m = [0u8, 0x7f, 0, 0, 0, 0, 8, 0];
    assert!(matches!(decode(&m), Err(CodecError::UnknownId { .. })));
    m[0] = 1;
    m[1] = 0x41;
    assert!(matches!(decode(&m), Err(CodecError::UnknownId { .. })));
}

#[test]
fn config_data_that_fits_an_rpmsg_payload() {
    let data = [0xa5u8; MAX_CONFIG_DATA];
    let mut out = [0u8; 496];
    let n = encode(
        &Message::Transport(Transport::ConfigRead(Config {
            generation: 1,
            offset: 0,
            data: &data,
        })),
        0,
        0,
        &mut out,
    )
    .unwrap();
    assert_eq!(n, 496);
    let too_much = [0u8; MAX_CONFIG_DATA + 1];
    assert_eq!(
        encode(
            &Message::Transport(Transport::SetConfig(Config {
                generation: 1,
                offset: 0,
                data: &too_much,
            })),
            0,
            0,
            &mut out,
        ),
        Err(CodecError::Room)
    );
}

/// Messages with a well-formed header (known ids, the size right) and an
/// arbitrary payload: the decoder's every branch is reached.
fn framed() -> impl Strategy<Value = Vec<u8>> {
    let ids = prop_oneof![(0x02u8..=0x0c), (0x40u8..=0x42), any::<u8>(),];
    (
        0u8..4,
        ids,
        any::<u16>(),
        proptest::collection::vec(any::<u8>(), 0..80),
    )
        .prop_map(|(kind, id, token, payload)| {
            let size = (HEADER_SIZE + payload.len()) as u16;
            let mut m = vec![kind, id, 1, 0];
            m.extend_from_slice(&token.to_le_bytes());
            m.extend_from_slice(&size.to_le_bytes());
            m.extend_from_slice(&payload);
            m
        })
}

proptest! {
    #[test]
    fn hostile_messages_never_panic(bytes in prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..128),
        framed(),
    ]) {
        if let Ok((h, m)) = decode(&bytes) {
            // What decodes re-encodes to a message that decodes the same
            // (padding and reserved fields are not kept).
            let mut out = [0u8; 256];
            let n = encode_response_or_request(&h, &m, &mut out);
            let (h2, m2) = decode(&out[..n]).unwrap();
            prop_assert_eq!(m2, m);
            prop_assert_eq!((h2.kind, h2.id, h2.dev_num, h2.token), (h.kind, h.id, h.dev_num, h.token));
        }
    }
}

/// Re-encodes a decoded message with its own header.
fn encode_response_or_request(h: &Header, m: &Message<'_>, out: &mut [u8]) -> usize {
    if h.is_response() {
        let req = Header {
            kind: h.kind & !1,
            ..*h
        };
        encode_response(m, &req, out).unwrap()
    } else {
        let n = encode(m, h.dev_num, h.token, out).unwrap();
        // A request's id is its own, but GET/SET_DEVICE_STATUS share a form.
        out[1] = h.id;
        n
    }
}
