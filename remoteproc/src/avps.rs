//! The AVPS devices a link carries, as rpmsg services: names, endpoint
//! addresses and the per-message framing both ends agree on, and the
//! [`session`] that runs them on a link.
//!
//! Each device is one rpmsg service. Its provider announces the service name
//! from a fixed endpoint; the user side answers from the same address, so each
//! side learns the other's endpoint from the first message.
//!
//! - Console (virtio ID 3): one rpmsg message per line of the provider's
//!   output, without the line end. An empty message is a hello (the user side
//!   says where to send).
//! - Network (virtio ID 1): Ethernet frames, each after a 12-byte
//!   `virtio_net_hdr_v1` (VIRTIO 1.x §5.1.6). No offload is negotiated, so
//!   every header field but `num_buffers` is zero; a frame whose header says
//!   otherwise is dropped and counted. A frame larger than one rpmsg payload
//!   continues in the messages after it, as with `VIRTIO_NET_F_MRG_RXBUF`:
//!   `num_buffers` counts the messages (header included) and the ones after
//!   the first carry only frame bytes. Every message but a frame's last is
//!   full (496 bytes), so a 1514-byte frame (MTU 1500) takes 4 messages.

use crate::rpmsg::MAX_PAYLOAD;

pub mod session;

pub use session::Session;

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
    /// Where `num_buffers` sits in the header.
    const NUM_BUFFERS: usize = 10;
    /// An Ethernet header: destination, source, EtherType.
    pub const ETHERNET_HEADER_LEN: usize = 14;
    /// The IP MTU of the interface on both sides.
    pub const MTU: usize = 1500;
    /// The largest frame (Ethernet header included, no FCS).
    pub const MAX_FRAME: usize = MTU + ETHERNET_HEADER_LEN;
    /// Messages the largest frame takes.
    pub const MAX_MESSAGES: usize = (HEADER_LEN + MAX_FRAME).div_ceil(MAX_PAYLOAD);
    /// A link's IPv4 network, as the partition's device tree gives it
    /// (`amp,ipv4-subnet` on the link's `net` device): the provider is host
    /// 2 on it, the other side host 1.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Subnet {
        /// The network address.
        pub addr: [u8; 4],
        /// Its prefix length (at most 30).
        pub prefix_len: u8,
    }

    impl Subnet {
        /// The network of a device tree without `amp,ipv4-subnet` (and of
        /// the plan's first link): 10.77.0.0/24.
        pub const DEFAULT: Subnet = Subnet {
            addr: [10, 77, 0, 0],
            prefix_len: 24,
        };

        fn host(&self, n: u32) -> [u8; 4] {
            (u32::from_be_bytes(self.addr) | n).to_be_bytes()
        }

        /// The provider's address.
        pub fn provider(&self) -> [u8; 4] {
            self.host(2)
        }

        /// The other side's address.
        pub fn user(&self) -> [u8; 4] {
            self.host(1)
        }

        /// The netmask.
        pub fn mask(&self) -> [u8; 4] {
            (!0u32)
                .checked_shl(32 - u32::from(self.prefix_len.min(30)))
                .unwrap_or(0)
                .to_be_bytes()
        }
    }
    /// The provider's MAC address (locally administered, unicast).
    pub const PROVIDER_MAC: [u8; 6] = [0x02, 0x41, 0x56, 0x50, 0x53, 0x02];
    /// The user's MAC address (locally administered, unicast).
    pub const USER_MAC: [u8; 6] = [0x02, 0x41, 0x56, 0x50, 0x53, 0x01];
    /// The provider's TCP echo service.
    pub const ECHO_PORT: u16 = 7;

    /// Why received messages are not a frame.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum FrameError {
        /// Shorter than the header plus an Ethernet header.
        TooShort,
        /// Longer than [`MAX_FRAME`], or in more messages than it may take.
        TooLong,
        /// A header field asks for an offload that was never negotiated.
        Offload,
        /// A continuation message that is empty or overfull.
        BadContinuation,
    }

    /// One frame on its way out, cut into the messages that carry it, as
    /// the ring takes them: a message the ring had no room for is kept and
    /// offered again.
    #[derive(Debug)]
    pub struct Outgoing {
        frame: [u8; MAX_FRAME],
        len: usize,
        /// Frame bytes already put in messages.
        done: usize,
        /// Messages put together so far, and how many the frame takes.
        made: usize,
        total: usize,
        message: [u8; MAX_PAYLOAD],
        /// The length of the message waiting in `message`.
        waiting: Option<usize>,
    }

    impl Default for Outgoing {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Outgoing {
        /// Nothing under way.
        pub const fn new() -> Self {
            Outgoing {
                frame: [0; MAX_FRAME],
                len: 0,
                done: 0,
                made: 0,
                total: 0,
                message: [0; MAX_PAYLOAD],
                waiting: None,
            }
        }

        /// No frame under way: [`Self::load`] may take the next.
        pub fn is_idle(&self) -> bool {
            self.waiting.is_none() && self.made == self.total
        }

        /// Drops a frame under way (the link was reset).
        pub fn clear(&mut self) {
            self.waiting = None;
            self.made = 0;
            self.total = 0;
        }

        /// Starts on `frame`; false (nothing taken) if it is longer than
        /// [`MAX_FRAME`] or a frame is still under way.
        pub fn load(&mut self, frame: &[u8]) -> bool {
            if frame.len() > MAX_FRAME || !self.is_idle() {
                return false;
            }
            self.frame[..frame.len()].copy_from_slice(frame);
            self.len = frame.len();
            self.done = 0;
            self.made = 0;
            self.total = (HEADER_LEN + frame.len()).div_ceil(MAX_PAYLOAD);
            true
        }

        /// Offers the frame's messages to `send` in order until it refuses
        /// one (false: no room) or all went; true once the frame is out.
        pub fn pump(&mut self, mut send: impl FnMut(&[u8]) -> bool) -> bool {
            loop {
                let n = match self.waiting {
                    Some(n) => n,
                    None if self.made == self.total => return true,
                    None => self.make(),
                };
                if !send(&self.message[..n]) {
                    self.waiting = Some(n);
                    return false;
                }
                self.waiting = None;
            }
        }

        fn make(&mut self) -> usize {
            let at = if self.made == 0 {
                self.message[..HEADER_LEN].fill(0);
                self.message[NUM_BUFFERS..HEADER_LEN]
                    .copy_from_slice(&(self.total as u16).to_le_bytes());
                HEADER_LEN
            } else {
                0
            };
            let n = (MAX_PAYLOAD - at).min(self.len - self.done);
            self.message[at..at + n].copy_from_slice(&self.frame[self.done..self.done + n]);
            self.done += n;
            self.made += 1;
            at + n
        }
    }

    /// Puts frames back together from the messages that carry them. A
    /// message that breaks the rules drops the frame under way and is
    /// counted by the caller; the next header message starts afresh.
    #[derive(Debug)]
    pub struct Reassembly {
        frame: [u8; MAX_FRAME],
        len: usize,
        /// Messages still to come for the frame under way.
        awaited: usize,
    }

    impl Default for Reassembly {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Reassembly {
        /// Nothing under way.
        pub const fn new() -> Self {
            Reassembly {
                frame: [0; MAX_FRAME],
                len: 0,
                awaited: 0,
            }
        }

        /// Forgets a frame under way (the link was reset).
        pub fn clear(&mut self) {
            self.len = 0;
            self.awaited = 0;
        }

        /// Takes one message; a whole frame once its last message is in.
        pub fn push(&mut self, message: &[u8]) -> Result<Option<&[u8]>, FrameError> {
            if self.awaited == 0 {
                if message.len() < HEADER_LEN {
                    return Err(FrameError::TooShort);
                }
                let (header, bytes) = message.split_at(HEADER_LEN);
                if header[..NUM_BUFFERS].iter().any(|b| *b != 0) {
                    return Err(FrameError::Offload);
                }
                // A sender without merged buffers may leave 0 here.
                let total = usize::from(u16::from_le_bytes([header[10], header[11]])).max(1);
                if total > MAX_MESSAGES {
                    return Err(FrameError::TooLong);
                }
                self.len = 0;
                self.awaited = total;
                self.append(bytes)?;
            } else {
                if message.is_empty() {
                    self.clear();
                    return Err(FrameError::BadContinuation);
                }
                self.append(message)?;
            }
            self.awaited -= 1;
            if self.awaited > 0 {
                return Ok(None);
            }
            if self.len < ETHERNET_HEADER_LEN {
                return Err(FrameError::TooShort);
            }
            Ok(Some(&self.frame[..self.len]))
        }

        fn append(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
            let Some(room) = self.frame.get_mut(self.len..self.len + bytes.len()) else {
                self.clear();
                return Err(FrameError::TooLong);
            };
            room.copy_from_slice(bytes);
            self.len += bytes.len();
            Ok(())
        }
    }
}
