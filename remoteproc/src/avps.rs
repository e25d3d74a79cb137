//! The AVPS devices a link carries: each is a virtio device (console, net,
//! block, RNG) on the provider's virtio-msg bus, served and driven through
//! the link's [`session`]. What both ends of a network device agree on
//! beyond virtio (addresses, MTU) is in [`net`].

pub mod session;

pub use session::Session;

/// What both ends of a link's network device agree on: the virtio device
/// carries Ethernet frames (`crate::virtio::net`), the addresses are ours.
pub mod net {
    /// An Ethernet header: destination, source, EtherType.
    pub const ETHERNET_HEADER_LEN: usize = 14;
    /// The IP MTU of the interface on both sides.
    pub const MTU: usize = 1500;
    /// The largest frame (Ethernet header included, no FCS).
    pub const MAX_FRAME: usize = MTU + ETHERNET_HEADER_LEN;
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
}
