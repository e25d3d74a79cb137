//! The AVPS devices a link carries, as rpmsg services: names, endpoint
//! addresses and the per-message framing both ends agree on.
//!
//! Each device is one rpmsg service. Its provider announces the service name
//! from a fixed endpoint; the user side answers from the same address, so each
//! side learns the other's endpoint from the first message.
//!
//! - Console (virtio ID 3): one rpmsg message per line of the provider's
//!   output, without the line end. An empty message is a hello (the user side
//!   says where to send).
//! - Network (virtio ID 1): one rpmsg message per Ethernet frame, after a
//!   12-byte `virtio_net_hdr_v1` (VIRTIO 1.x §5.1.6). No offload features are
//!   negotiated, so every header field is zero; a frame whose header says
//!   otherwise is dropped and counted. A frame must fit one 512-byte rpmsg
//!   buffer, which gives an MTU of [`net::MTU`] bytes.

use crate::rpmsg::MAX_PAYLOAD;

/// The AVPS console service.
pub mod console {
    /// rpmsg service name.
    pub const SERVICE: &[u8] = b"avps-console";
    /// Endpoint address on both sides.
    pub const EP: u32 = 0x400;
}

/// The AVPS network device service.
pub mod net {
    use super::MAX_PAYLOAD;

    /// rpmsg service name.
    pub const SERVICE: &[u8] = b"avps-net";
    /// Endpoint address on both sides.
    pub const EP: u32 = 0x402;
    /// `virtio_net_hdr_v1`: flags, gso_type (u8 each), hdr_len, gso_size,
    /// csum_start, csum_offset, num_buffers (le16 each).
    pub const HEADER_LEN: usize = 12;
    /// An Ethernet header: destination, source, EtherType.
    pub const ETHERNET_HEADER_LEN: usize = 14;
    /// The largest frame (Ethernet header included) one message carries.
    pub const MAX_FRAME: usize = MAX_PAYLOAD - HEADER_LEN;
    /// The IP MTU of the interface on both sides.
    pub const MTU: usize = MAX_FRAME - ETHERNET_HEADER_LEN;
    /// The provider's (the RTOS's) IPv4 address on a link's network.
    pub const PROVIDER_IP: [u8; 4] = [10, 77, 0, 2];
    /// The user's (Linux's) IPv4 address on a link's network.
    pub const USER_IP: [u8; 4] = [10, 77, 0, 1];
    /// Prefix length of the link's network.
    pub const PREFIX_LEN: u8 = 24;
    /// The provider's MAC address (locally administered, unicast).
    pub const PROVIDER_MAC: [u8; 6] = [0x02, 0x41, 0x56, 0x50, 0x53, 0x02];
    /// The user's MAC address (locally administered, unicast).
    pub const USER_MAC: [u8; 6] = [0x02, 0x41, 0x56, 0x50, 0x53, 0x01];
    /// The provider's TCP echo service.
    pub const ECHO_PORT: u16 = 7;

    /// Why a received message is not a frame.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum FrameError {
        /// Shorter than the header plus an Ethernet header.
        TooShort,
        /// Longer than [`MAX_FRAME`] after the header.
        TooLong,
        /// A header field asks for an offload that was never negotiated.
        Offload,
    }

    /// Writes the (all-zero) header in front of a frame of `frame.len()`
    /// bytes into `out`; returns the message length.
    pub fn encode(frame: &[u8], out: &mut [u8]) -> Option<usize> {
        let n = HEADER_LEN + frame.len();
        if frame.len() > MAX_FRAME || out.len() < n {
            return None;
        }
        out[..HEADER_LEN].fill(0);
        out[HEADER_LEN..n].copy_from_slice(frame);
        Some(n)
    }

    /// The frame inside a received message, after checking its header.
    pub fn decode(message: &[u8]) -> Result<&[u8], FrameError> {
        if message.len() < HEADER_LEN + ETHERNET_HEADER_LEN {
            return Err(FrameError::TooShort);
        }
        let (header, frame) = message.split_at(HEADER_LEN);
        if frame.len() > MAX_FRAME {
            return Err(FrameError::TooLong);
        }
        // num_buffers (the last field) is only meaningful with
        // VIRTIO_NET_F_MRG_RXBUF; a legacy sender may leave 1 there.
        if header[..HEADER_LEN - 2].iter().any(|b| *b != 0) {
            return Err(FrameError::Offload);
        }
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::net;

    #[test]
    fn a_full_size_frame_fills_one_rpmsg_buffer() {
        // Facts: rpmsg buffers are 512 bytes with a 16-byte header (Linux
        // virtio_rpmsg_bus.c, MAX_RPMSG_BUF_SIZE and struct rpmsg_hdr);
        // virtio_net_hdr_v1 is 12 bytes (VIRTIO 1.x §5.1.6).
        assert_eq!(net::MAX_FRAME, 484);
        assert_eq!(net::MTU, 470);
        let frame = [0xa5u8; net::MAX_FRAME];
        let mut msg = [0xffu8; 496];
        assert_eq!(net::encode(&frame, &mut msg), Some(496));
        assert_eq!(net::decode(&msg), Ok(&frame[..]));
        assert_eq!(net::encode(&[0; net::MAX_FRAME + 1], &mut [0; 600]), None);
    }

    #[test]
    fn headers_asking_for_offloads_and_runts_are_refused() {
        let mut msg = [0u8; 60];
        assert!(net::decode(&msg).is_ok());
        msg[0] = 1; // VIRTIO_NET_HDR_F_NEEDS_CSUM
        assert_eq!(net::decode(&msg), Err(net::FrameError::Offload));
        assert_eq!(net::decode(&[0; 25]), Err(net::FrameError::TooShort));
        assert_eq!(net::decode(&[0; 497]), Err(net::FrameError::TooLong));
        let mut legacy = [0u8; 60];
        legacy[10] = 1; // num_buffers = 1
        assert!(net::decode(&legacy).is_ok());
    }
}
