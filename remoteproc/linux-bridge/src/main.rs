//! `avps-bridge`: the Linux end of a partition's shared-memory links, on an
//! unmodified distribution kernel (no rpmsg or UIO drivers needed).
//!
//! It finds the links in the device tree the kernel booted with
//! (`/sys/firmware/fdt`, under `/amp-links`), maps each window
//! through `/dev/mem` (the windows lie outside Linux's memory, which a
//! `STRICT_DEVMEM` kernel allows), speaks rpmsg as the host side, drives the
//! peer's virtio devices over virtio-msg with `virtio-drivers`' own drivers
//! and exposes each console as a pseudo-terminal at
//! `/dev/avps/<link>/console` and each network device as a TAP interface
//! (`avps0`, `avps1`, ...); it serves Linux's entropy to the peer.
//! It logs what it found, and exits cleanly on SIGTERM or SIGINT.
//!
//! `avps-bridge echo` checks a network link end to end against the
//! provider's TCP echo service.

mod drivers;
mod echo;
mod links;
mod nbd;
mod pty;
mod read_bench;
mod tap;

use std::cell::RefCell;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use drivers::{Drivers, GetRandom, LinkSession, LinuxDevices};
use remoteproc::avps::net;
use remoteproc::avps::session::{DeviceEnd, Devices, Kind, Placement, Polled, Received, Session};
use remoteproc::virtio::blk::Blk;
use remoteproc::virtio::rng::Rng;
use remoteproc::virtio::VirtioDevice;
use shmem::doorbell::Polling;
use shmem::Window;
use virtio_msg_driver::WindowHal;

const USAGE: &str = "\
usage: avps-bridge [DTB]
       avps-bridge echo [ADDRESS:PORT] [BYTES]
       avps-bridge read-bench DEVICE [MIB]

Serves the shared-memory links that the flattened device tree DTB (default
/sys/firmware/fdt) describes under /amp-links, driving the peer's virtio
devices with virtio-drivers' drivers: each console appears at
/dev/avps/<link>/console, each network device as a TAP interface (avps0,
avps1, ...) with host address 1 on the link's network (its device tree's
amp,ipv4-subnet: 10.77.0.1/24 on the first link; the provider is host 2,
10.77.0.2), each disk at /dev/avps/<link>/block (an NBD device). It serves
Linux's entropy (getrandom) and a disk Linux provides (its amp,backing,
default /dev/vda) to the peer.
Needs /dev/mem and, for the peer's devices, the tun and nbd modules.

`echo` sends BYTES (default 1048576) of test data through a TCP echo service
(default 10.77.0.2:7) and checks that the same bytes come back.

`read-bench` reads DEVICE without the page cache: 1 MiB sequential reads
over its first MIB MiB (default 8), then as many 4 KiB reads at random.
";
/// What backs a disk Linux provides when its link names no backing.
const DEFAULT_BACKING: &str = "/dev/vda";
/// Where the window layout keeps the resource table and the epochs.
const TABLE_OFFSET: usize = amp_plan::layout::TABLE_OFFSET as usize;
const EPOCH_OFFSET: usize = amp_plan::layout::EPOCH_OFFSET as usize;

static STOP: AtomicBool = AtomicBool::new(false);
/// How long the bridge keeps polling its links after the last message
/// before it sleeps in millisecond ticks.
const SPIN: std::time::Duration = std::time::Duration::from_millis(2);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn log(msg: std::fmt::Arguments<'_>) {
    // One write per line: the console is shared with the kernel and the
    // shell, and a line written in pieces comes out cut by theirs.
    let line = format!("avps-bridge: {msg}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// A window mapped from `/dev/mem`.
struct Mapping {
    base: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(phys: u64, len: u64) -> Result<Self, String> {
        let path = c"/dev/mem";
        // SAFETY: a NUL-terminated path; the returned descriptor is closed below.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_SYNC) };
        if fd < 0 {
            return Err(format!(
                "cannot open /dev/mem: {}",
                std::io::Error::last_os_error()
            ));
        }
        let len = usize::try_from(len).map_err(|_| "window too large".to_string())?;
        let offset =
            libc::off_t::try_from(phys).map_err(|_| "window address out of range".to_string())?;
        // SAFETY: maps `len` bytes of physical memory at `phys` shared; the
        // kernel checks the range against STRICT_DEVMEM and fails otherwise.
        let base = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                offset,
            )
        };
        // SAFETY: `fd` is ours; the mapping stays valid after close.
        unsafe { libc::close(fd) };
        if base == libc::MAP_FAILED {
            return Err(format!(
                "cannot map {phys:#x}+{len:#x} from /dev/mem: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(Mapping {
            base: base.cast(),
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped, once no window uses it.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// One served link.
struct Served {
    node: links::LinkInfo,
    /// The link's AVPS session (the link itself is `session.link`), for
    /// the life of the bridge: the drivers' buses borrow it.
    session: &'static RefCell<LinkSession>,
    drivers: Drivers,
    console: Option<pty::Pty>,
    /// The TAP interface for the network device the peer provides.
    tap: Option<tap::Tap>,
    /// The last error logged, so a persisting one is logged once.
    last_error: Option<String>,
}

impl Served {
    fn log_once(&mut self, text: String) {
        if self.last_error.as_deref() != Some(&text) {
            log(format_args!("link {}: {text}", self.node.name));
            self.last_error = Some(text);
        }
    }
}

fn serve(node: links::LinkInfo, map: &'static Mapping, taps: &mut u32) -> Result<Served, String> {
    // SAFETY: the mapping is the link's window (outside Linux's memory),
    // valid for the rest of the program (leaked), and only reached through
    // this `Window` and the drivers' pool inside it.
    let window = unsafe { Window::from_raw(map.base, map.len) }
        .map_err(|e| format!("{e:?}"))?
        .with_bus_address(node.window.0);
    let placement = Placement {
        host: node.host,
        window: node.window.0,
        vrings: node.vrings,
        buffers: node.buffers,
        ring_entries: node.ring_entries,
        table: TABLE_OFFSET,
        header: EPOCH_OFFSET,
    };
    let config = placement
        .config()
        .ok_or("rings or buffers outside the window, or a ring too large")?;
    // The peer's console and network device are used here (a pty, a TAP
    // interface); Linux provides the entropy device (from getrandom). The
    // rest has no end in the bridge yet (`amp check` refuses it).
    let mut devices = Devices::default();
    for (kind, provider) in &node.devices {
        let theirs = *provider == node.peer;
        match (Kind::from_name(kind), theirs) {
            (Some(k @ (Kind::Console | Kind::Net | Kind::Block)), true) => {
                devices.set(k, DeviceEnd::Uses, true)
            }
            (Some(k @ (Kind::Rng | Kind::Block)), false) => {
                devices.set(k, DeviceEnd::Provides, true)
            }
            _ => log(format_args!(
                "link {}: {kind} provided by {provider}: no end for it in the bridge, not served",
                node.name
            )),
        }
    }
    let rng = devices.has(Kind::Rng, DeviceEnd::Provides).then(|| {
        log(format_args!(
            "link {}: entropy device for {} (virtio-rng over virtio-msg, from getrandom)",
            node.name, node.peer
        ));
        VirtioDevice::new(Rng::new(GetRandom), window)
    });
    let blk = match devices.has(Kind::Block, DeviceEnd::Provides) {
        true => {
            let path = Path::new(node.backing.as_deref().unwrap_or(DEFAULT_BACKING));
            let disk = match drivers::FileDisk::open(path) {
                Ok(disk) => {
                    log(format_args!(
                        "link {}: disk for {} (virtio-blk over virtio-msg, from {}, {} sectors)",
                        node.name,
                        node.peer,
                        path.display(),
                        remoteproc::virtio::blk::BlockStore::sectors(&disk)
                    ));
                    disk
                }
                Err(e) => {
                    // Numbered as the tree says, but empty: the peer's
                    // driver sees a disk of no sectors.
                    log(format_args!(
                        "link {}: no disk for {}: {}: {e}",
                        node.name,
                        node.peer,
                        path.display()
                    ));
                    drivers::FileDisk::empty()
                }
            };
            let id = format!("{}", path.display());
            Some(VirtioDevice::new(
                Blk::new(disk, id.as_bytes(), false),
                window,
            ))
        }
        false => None,
    };
    let session = Session::open(window, config, Polling, devices, LinuxDevices { blk, rng })
        .map_err(|e| format!("{e:?}"))?;
    let session: &'static RefCell<LinkSession> = Box::leak(Box::new(RefCell::new(session)));
    // Our drivers' queues and bounce buffers: our half of what the rpmsg
    // parts leave of the window.
    let pool = if devices.any(DeviceEnd::Uses) {
        let (at, len) = amp_plan::layout::virtio_pool(node.window.1, node.host)
            .ok_or("the window leaves no room for the drivers' queues")?;
        let (at, len) = (at as usize, len as usize);
        // SAFETY: `at..at + len` lies inside the leaked mapping (the layout
        // keeps it inside the window), is page-aligned, belongs to this
        // side's drivers only (the peer's half and the rpmsg parts lie
        // elsewhere), and nothing else in the bridge touches it.
        let id = unsafe { WindowHal::add_pool(map.base.add(at), node.window.0 + at as u64, len) };
        Some(id.ok_or("more links with drivers than the bridge has pools for")?)
    } else {
        None
    };
    let console = if devices.has(Kind::Console, DeviceEnd::Uses) {
        let dir = Path::new("/dev/avps").join(&node.name);
        let p = pty::Pty::open(&dir.join("console")).map_err(|e| format!("console pty: {e}"))?;
        log(format_args!(
            "link {}: console of {} at {} ({})",
            node.name,
            node.peer,
            dir.join("console").display(),
            p.slave
        ));
        Some(p)
    } else {
        None
    };
    let tap = if devices.has(Kind::Net, DeviceEnd::Uses) {
        let name = format!("avps{taps}");
        *taps += 1;
        let subnet = node.net_subnet.unwrap_or(net::Subnet::DEFAULT);
        let t = tap::Tap::open(&name, subnet).map_err(|e| format!("network device: {e}"))?;
        let ip = subnet.user();
        let peer_ip = subnet.provider();
        log(format_args!(
            "link {}: network device of {} at {} ({}.{}.{}.{}/{}, MTU {}; {} is {}.{}.{}.{})",
            node.name,
            node.peer,
            t.name,
            ip[0],
            ip[1],
            ip[2],
            ip[3],
            subnet.prefix_len,
            net::MTU,
            node.peer,
            peer_ip[0],
            peer_ip[1],
            peer_ip[2],
            peer_ip[3]
        ));
        Some(t)
    } else {
        None
    };
    let blk_at = Path::new("/dev/avps").join(&node.name).join("block");
    Ok(Served {
        node,
        session,
        drivers: Drivers::new(session, pool, blk_at),
        console,
        tap,
        last_error: None,
    })
}

fn main() {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("-h" | "--help") => {
            print!("{USAGE}");
            return;
        }
        Some("echo") => std::process::exit(echo::run(&args[1..])),
        Some("read-bench") => std::process::exit(read_bench::run(&args[1..])),
        Some(a) if a.starts_with('-') || args.len() > 1 => {
            eprint!("avps-bridge: unexpected `{}`\n{USAGE}", args.join(" "));
            std::process::exit(2);
        }
        _ => {}
    }
    let root = args.first().cloned().unwrap_or_else(|| links::FDT.into());
    let (nodes, bad) = links::read(Path::new(&root)).unwrap_or_else(|e| {
        log(format_args!("{e}"));
        Default::default()
    });
    for b in &bad {
        log(format_args!("{b}: not a well-formed link node, ignored"));
    }
    if nodes.is_empty() {
        log(format_args!(
            "no links under /amp-links in {root}; nothing to do"
        ));
        return;
    }
    let mut maps = Vec::new();
    for node in &nodes {
        log(format_args!(
            "link {}: window {:#x}+{:#x}, {} side, peer {}, devices {:?}",
            node.name,
            node.window.0,
            node.window.1,
            if node.host { "host" } else { "remote" },
            node.peer,
            node.devices
        ));
        match Mapping::new(node.window.0, node.window.1) {
            Ok(m) => maps.push(Some(m)),
            Err(e) => {
                log(format_args!("link {}: {e}", node.name));
                maps.push(None);
            }
        }
    }
    let mut served: Vec<Served> = Vec::new();
    let mut taps = 0;
    for (node, map) in nodes.into_iter().zip(maps) {
        let Some(map) = map else { continue };
        let name = node.name.clone();
        // The drivers' buses and pools point into the window for the rest
        // of the program.
        let map: &'static Mapping = Box::leak(Box::new(map));
        match serve(node, map, &mut taps) {
            Ok(s) => served.push(s),
            Err(e) => log(format_args!("link {name}: {e}")),
        }
    }
    let mut last_busy = std::time::Instant::now();
    while !STOP.load(Ordering::Relaxed) {
        let mut busy = false;
        for s in &mut served {
            busy |= serve_link(s);
        }
        if busy {
            last_busy = std::time::Instant::now();
        } else if last_busy.elapsed() > SPIN {
            // Back off to a millisecond tick when nothing happens; a frame
            // from Linux ends the wait at once.
            wait_for_frames(&served, 1);
        } else {
            // The peer answers in microseconds: an answer to what just went
            // out is seen here, not a tick later.
            std::hint::spin_loop();
        }
    }
    for s in &served {
        if let Some(n) = s.drivers.net.as_ref().filter(|n| n.dropped > 0) {
            log(format_args!(
                "link {}: {} frames dropped",
                s.node.name, n.dropped
            ));
        }
        let st = s.session.borrow().stats();
        if st.refused + st.unanswered > 0 {
            log(format_args!(
                "link {}: {} messages to our devices refused, {} answers dropped",
                s.node.name, st.refused, st.unanswered
            ));
        }
    }
    log(format_args!("stopping"));
}

/// One pass over a link: the session, what arrived, the drivers. Whether
/// anything moved.
fn serve_link(s: &mut Served) -> bool {
    let mut busy = false;
    let polled = s.session.borrow_mut().poll();
    if let Polled::Reset(e) = polled {
        log(format_args!("link {}: {e:?}; reset", s.node.name));
        s.drivers.stop();
    }
    loop {
        let received = s.session.borrow_mut().receive();
        match received {
            Ok(Some(Received::PeerBus)) => {
                busy = true;
                log(format_args!(
                    "link {}: {} announced its virtio-msg bus",
                    s.node.name, s.node.peer
                ));
            }
            Ok(Some(Received::Message(m))) => {
                // For no endpoint of ours: given back unread.
                busy = true;
                let _ = s.session.borrow_mut().link.release(m);
            }
            Ok(Some(Received::Service(_))) => busy = true,
            Ok(None) => break,
            Err(e) => {
                s.log_once(format!("{e:?}"));
                break;
            }
        }
    }
    let had = (
        s.drivers.console.is_some(),
        s.drivers.net.is_some(),
        s.drivers.blk.is_some(),
    );
    for e in s.drivers.start() {
        s.log_once(e);
    }
    if !had.0 && s.drivers.console.is_some() {
        log(format_args!(
            "link {}: console of {} up (virtio-drivers' VirtIOConsole over virtio-msg)",
            s.node.name, s.node.peer
        ));
    }
    if let (false, Some(b)) = (had.2, &s.drivers.blk) {
        log(format_args!(
            "link {}: disk of {} at /dev/avps/{}/block ({}, virtio-drivers' VirtIOBlk over virtio-msg)",
            s.node.name,
            s.node.peer,
            s.node.name,
            b.export.device.display()
        ));
    }
    if !had.1 && s.drivers.net.is_some() {
        log(format_args!(
            "link {}: network device of {} up (virtio-drivers' VirtIONetRaw over virtio-msg)",
            s.node.name, s.node.peer
        ));
    }
    let (moved, failed) = s.drivers.pump(s.console.as_mut(), s.tap.as_ref());
    for e in failed {
        s.log_once(e);
    }
    busy | moved
}

/// Sleeps up to `ms` milliseconds, or until a TAP interface has a frame or
/// an NBD export a request.
fn wait_for_frames(served: &[Served], ms: i32) {
    let taps = served
        .iter()
        .filter(|s| s.drivers.net.as_ref().is_some_and(|n| n.takes_frames()))
        .filter_map(|s| s.tap.as_ref().map(|t| t.fd()));
    let disks = served
        .iter()
        .filter_map(|s| s.drivers.blk.as_ref().map(|b| b.export.fd()));
    let mut fds: Vec<libc::pollfd> = taps
        .chain(disks)
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `fds` is a live array of `fds.len()` pollfd entries.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
}
