//! A TAP interface (`/dev/net/tun`) standing for a link's AVPS network device,
//! configured with the link network's address, MTU and MAC.

use std::io;

use remoteproc::avps::net;

/// `TUNSETIFF`: `_IOW('T', 202, int)` (linux/if_tun.h).
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
/// `IFF_TAP` and `IFF_NO_PI` (linux/if_tun.h): Ethernet frames, no prefix.
const IFF_TAP: i16 = 0x0002;
const IFF_NO_PI: i16 = 0x1000;
/// Interface ioctls (linux/sockios.h).
const SIOCGIFFLAGS: libc::c_ulong = 0x8913;
const SIOCSIFFLAGS: libc::c_ulong = 0x8914;
const SIOCSIFADDR: libc::c_ulong = 0x8916;
const SIOCSIFNETMASK: libc::c_ulong = 0x891c;
const SIOCSIFMTU: libc::c_ulong = 0x8922;
const SIOCSIFHWADDR: libc::c_ulong = 0x8924;
/// `ARPHRD_ETHER` (linux/if_arp.h).
const ARPHRD_ETHER: u16 = 1;

/// `struct ifreq`: the name, then a 24-byte union (linux/if.h).
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    data: [u8; 24],
}

impl IfReq {
    fn new(name: &str) -> Self {
        let mut r = IfReq {
            name: [0; 16],
            data: [0; 24],
        };
        let n = name.len().min(15);
        r.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        r
    }

    /// A `sockaddr_in` with `addr` in the union.
    fn with_ipv4(name: &str, addr: [u8; 4]) -> Self {
        let mut r = Self::new(name);
        r.data[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        r.data[4..8].copy_from_slice(&addr);
        r
    }
}

fn ioctl(fd: libc::c_int, request: libc::c_ulong, req: &mut IfReq, what: &str) -> io::Result<()> {
    // SAFETY: `req` is a live, writable `struct ifreq` for the whole call; the
    // request codes used here read and write nothing beyond it.
    if unsafe { libc::ioctl(fd, request as _, req as *mut IfReq) } < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

fn busy(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::ResourceBusy
}

/// An open TAP interface; it disappears when dropped.
pub(crate) struct Tap {
    fd: libc::c_int,
    /// The interface name.
    pub(crate) name: String,
}

impl Tap {
    /// Creates the TAP interface `name` and brings it up with the user side's
    /// address on the link network.
    pub(crate) fn open(name: &str, subnet: net::Subnet) -> io::Result<Self> {
        // SAFETY: a NUL-terminated path; the descriptor is owned by `Tap`.
        let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_NONBLOCK) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("cannot open /dev/net/tun ({e}); load the tun module first (`insmod tun.ko` or `modprobe tun`)"),
            ));
        }
        let tap = Tap {
            fd,
            name: name.to_string(),
        };
        // A bridge that was just told to stop may still hold the interface:
        // give it a few seconds to go.
        let mut tries = 0;
        loop {
            let mut req = IfReq::new(name);
            req.data[..2].copy_from_slice(&(IFF_TAP | IFF_NO_PI).to_ne_bytes());
            match ioctl(fd, TUNSETIFF, &mut req, "TUNSETIFF") {
                Err(e) if tries < 50 && busy(&e) => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) if busy(&e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("{name} is held by another program (another avps-bridge?): {e}"),
                    ))
                }
                r => break r?,
            }
        }
        tap.configure(subnet)?;
        Ok(tap)
    }

    fn configure(&self, subnet: net::Subnet) -> io::Result<()> {
        // SAFETY: a plain socket for interface ioctls, closed below.
        let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
        if sock < 0 {
            return Err(io::Error::last_os_error());
        }
        let result = (|| {
            let mut req = IfReq::new(&self.name);
            req.data[..4].copy_from_slice(&(net::MTU as i32).to_ne_bytes());
            ioctl(sock, SIOCSIFMTU, &mut req, "set MTU")?;
            let mut req = IfReq::new(&self.name);
            req.data[..2].copy_from_slice(&ARPHRD_ETHER.to_ne_bytes());
            req.data[2..8].copy_from_slice(&net::USER_MAC);
            ioctl(sock, SIOCSIFHWADDR, &mut req, "set MAC address")?;
            let mut req = IfReq::with_ipv4(&self.name, subnet.user());
            ioctl(sock, SIOCSIFADDR, &mut req, "set address")?;
            let mut req = IfReq::with_ipv4(&self.name, subnet.mask());
            ioctl(sock, SIOCSIFNETMASK, &mut req, "set netmask")?;
            let mut req = IfReq::new(&self.name);
            ioctl(sock, SIOCGIFFLAGS, &mut req, "read flags")?;
            let flags = i16::from_ne_bytes([req.data[0], req.data[1]])
                | libc::IFF_UP as i16
                | libc::IFF_RUNNING as i16;
            req.data[..2].copy_from_slice(&flags.to_ne_bytes());
            ioctl(sock, SIOCSIFFLAGS, &mut req, "bring up")
        })();
        // SAFETY: our own socket, closed once.
        unsafe { libc::close(sock) };
        result
    }

    /// The descriptor, for `poll`.
    pub(crate) fn fd(&self) -> libc::c_int {
        self.fd
    }

    /// One frame Linux sent out of the interface, if any is waiting.
    pub(crate) fn read(&self, buf: &mut [u8]) -> Option<usize> {
        // SAFETY: reads into a live, writable slice of the given length.
        let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
        usize::try_from(n).ok().filter(|n| *n > 0)
    }

    /// Hands one frame to Linux as received on the interface.
    pub(crate) fn write(&self, frame: &[u8]) -> bool {
        // SAFETY: writes from a live slice of the given length.
        let n = unsafe { libc::write(self.fd, frame.as_ptr().cast(), frame.len()) };
        usize::try_from(n) == Ok(frame.len())
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        // SAFETY: our own descriptor, closed once; the interface goes with it.
        unsafe { libc::close(self.fd) };
    }
}
