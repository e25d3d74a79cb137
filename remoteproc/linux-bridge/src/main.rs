//! `avps-bridge`: the Linux end of a partition's shared-memory links, on an
//! unmodified distribution kernel (no rpmsg or UIO drivers needed).
//!
//! It finds the links in the device tree the kernel booted with
//! (`/sys/firmware/fdt`, under `/amp-links`), maps each window
//! through `/dev/mem` (the windows lie outside Linux's memory, which a
//! `STRICT_DEVMEM` kernel allows), speaks rpmsg as the host side, and exposes
//! each AVPS console as a pseudo-terminal at `/dev/avps/<link>/console` and
//! each AVPS network device as a TAP interface (`avps0`, `avps1`, ...).
//! It logs what it found, and exits cleanly on SIGTERM or SIGINT.
//!
//! `avps-bridge echo` checks a network link end to end against the
//! provider's TCP echo service.

mod echo;
mod links;
mod pty;
mod tap;

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use remoteproc::avps::net;
use remoteproc::avps::session::{Device, DeviceEnd, Devices, Placement, Polled, Received, Session};
use remoteproc::virtio::bus::{self, Served as Answer};
use remoteproc::virtio::rng::{Entropy, Rng};
use remoteproc::virtio::VirtioDevice;
use shmem::doorbell::Polling;
use shmem::Window;

const USAGE: &str = "\
usage: avps-bridge [DTB]
       avps-bridge echo [ADDRESS:PORT] [BYTES]

Serves the shared-memory links that the flattened device tree DTB (default
/sys/firmware/fdt) describes under /amp-links: each AVPS console appears at
/dev/avps/<link>/console, each AVPS network device as a TAP interface
(avps0, avps1, ...) with host address 1 on the link's network (its device
tree's amp,ipv4-subnet: 10.77.0.1/24 on the first link); the provider is
host 2 (10.77.0.2).
Needs /dev/mem and, for network devices, the tun module.

`echo` sends BYTES (default 1048576) of test data through a TCP echo service
(default 10.77.0.2:7) and checks that the same bytes come back.
";
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
    let _ = writeln!(std::io::stderr(), "avps-bridge: {msg}");
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
struct Served<'m> {
    node: links::LinkInfo,
    /// The link's AVPS session (the link itself is `session.link`).
    session: Session<'m, Polling>,
    console: Option<pty::Pty>,
    /// The TAP interface for the network device the peer provides.
    tap: Option<tap::Tap>,
    /// The frame read from the TAP on its way out, as the ring has room.
    outgoing: net::Outgoing,
    /// The frame coming in from the peer, message by message.
    incoming: net::Reassembly,
    /// Frames dropped: too long for the link, or not frames at all.
    dropped: u64,
    /// The last error logged, so a persisting one is logged once.
    last_error: Option<String>,
    /// The entropy device Linux provides to the peer.
    rng: Option<VirtioDevice<'m, Rng<GetRandom>>>,
}

/// Entropy from Linux's pool.
struct GetRandom;

impl Entropy for GetRandom {
    fn fill(&mut self, out: &mut [u8]) -> usize {
        // SAFETY: `out` is writable for its length.
        let n = unsafe { libc::getrandom(out.as_mut_ptr().cast(), out.len(), 0) };
        usize::try_from(n).unwrap_or(0)
    }
}

fn serve<'m>(
    node: links::LinkInfo,
    map: &'m Mapping,
    taps: &mut u32,
) -> Result<Served<'m>, String> {
    // SAFETY: the mapping is the link's window (outside Linux's memory), valid
    // until `map` is dropped, and only reached through this `Window`.
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
    // rest has no backend in the bridge yet (`amp check` refuses it).
    let mut devices = Devices::of(
        &node.peer,
        node.devices.iter().map(|(k, p)| (k.as_str(), p.as_str())),
    );
    for end in [&mut devices.console, &mut devices.net] {
        *end = match *end {
            Some(DeviceEnd::Provides) => Some(DeviceEnd::Uses),
            _ => None,
        };
    }
    devices.rng = match devices.rng {
        Some(DeviceEnd::Uses) => Some(DeviceEnd::Provides),
        _ => None,
    };
    let session = Session::open(window, config, Polling, devices).map_err(|e| format!("{e:?}"))?;
    let rng = devices.rng.map(|_| {
        log(format_args!(
            "link {}: entropy device for {} (virtio-rng over virtio-msg, from getrandom)",
            node.name, node.peer
        ));
        VirtioDevice::new(Rng::new(GetRandom), window)
    });
    let console = if devices.console.is_some() {
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
    let tap = if devices.net.is_some() {
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
    Ok(Served {
        node,
        session,
        console,
        tap,
        outgoing: net::Outgoing::new(),
        incoming: net::Reassembly::new(),
        dropped: 0,
        last_error: None,
        rng,
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
    let mut served: Vec<Served<'_>> = Vec::new();
    let mut taps = 0;
    for (node, map) in nodes.into_iter().zip(&maps) {
        let Some(map) = map else { continue };
        let name = node.name.clone();
        match serve(node, map, &mut taps) {
            Ok(s) => served.push(s),
            Err(e) => log(format_args!("link {name}: {e}")),
        }
    }
    let mut buf = [0u8; 496];
    let mut last_busy = std::time::Instant::now();
    while !STOP.load(Ordering::Relaxed) {
        let mut busy = false;
        for s in &mut served {
            if let Polled::Reset(e) = s.session.poll() {
                log(format_args!("link {}: {e:?}; reset", s.node.name));
                s.outgoing.clear();
                s.incoming.clear();
            }
            busy |= forward_frames(s);
            loop {
                match s.session.receive(&mut buf) {
                    Ok(Some(Received::Announced(device))) => {
                        busy = true;
                        let what = match device {
                            Device::Console => "console",
                            Device::Net => "network device",
                        };
                        log(format_args!(
                            "link {}: {} announced its {what}",
                            s.node.name, s.node.peer
                        ));
                    }
                    Ok(Some(Received::Console(n))) => {
                        busy = true;
                        if let Some(p) = &mut s.console {
                            p.write_line(&buf[..n]);
                        }
                    }
                    Ok(Some(Received::Net(n))) => {
                        busy = true;
                        match (&s.tap, s.incoming.push(&buf[..n])) {
                            (Some(t), Ok(Some(frame))) => {
                                if !t.write(frame) {
                                    s.dropped += 1;
                                }
                            }
                            (_, Ok(None)) => {}
                            _ => s.dropped += 1,
                        }
                    }
                    Ok(Some(Received::Message(m))) => {
                        // For no endpoint of ours: given back unread.
                        busy = true;
                        let _ = s.session.link.release(m);
                    }
                    Ok(Some(Received::Service(_))) => busy = true,
                    Ok(Some(Received::Virtio { len, src })) => {
                        busy = true;
                        serve_virtio(s, &buf[..len], src);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let text = format!("{e:?}");
                        if s.last_error.as_deref() != Some(&text) {
                            log(format_args!("link {}: {text}", s.node.name));
                            s.last_error = Some(text);
                        }
                        break;
                    }
                }
            }
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
        if s.dropped > 0 {
            log(format_args!(
                "link {}: {} frames dropped",
                s.node.name, s.dropped
            ));
        }
    }
    log(format_args!("stopping"));
}

/// Answers one virtio-msg message for the devices Linux provides on a
/// link. An answer waits (briefly) for room; an event goes only if there is
/// room, as the driver polls its rings anyway.
fn serve_virtio(s: &mut Served<'_>, message: &[u8], src: u32) {
    let Some(rng) = &mut s.rng else { return };
    let mut out = [0u8; 496];
    let (len, patient) = match bus::serve(&mut [rng], message, &mut out) {
        Answer::Reply(n) => (n, true),
        Answer::Event(n) => (n, false),
        Answer::Nothing => return,
        Answer::Refused => {
            s.dropped += 1;
            return;
        }
    };
    for _ in 0..if patient { 100_000 } else { 1 } {
        match s.session.link.send(bus::EP, src, &out[..len]) {
            Ok(true) => return,
            Ok(false) => std::hint::spin_loop(),
            Err(_) => return,
        }
    }
}

/// Sends the frames Linux wrote to a link's TAP interface to its peer, as
/// the ring has room; true if any message went.
fn forward_frames(s: &mut Served<'_>) -> bool {
    let Some(tap) = &s.tap else {
        return false;
    };
    if s.session.peer_net().is_none() {
        return false;
    }
    let mut sent = false;
    loop {
        if s.outgoing.is_idle() {
            let mut frame = [0u8; net::MAX_FRAME + 1];
            match tap.read(&mut frame) {
                Some(n) if n <= net::MAX_FRAME => {
                    s.outgoing.load(&frame[..n]);
                }
                // Larger than the MTU we gave the interface: cannot go.
                Some(_) => {
                    s.dropped += 1;
                    continue;
                }
                None => return sent,
            }
        }
        let session = &mut s.session;
        let out = s.outgoing.pump(|m| {
            let ok = session.send_net(m);
            sent |= ok;
            ok
        });
        // Ring full: the frame waits, and Linux's queue behind it.
        if !out {
            return sent;
        }
    }
}

/// Sleeps up to `ms` milliseconds, or until a TAP interface has a frame.
fn wait_for_frames(served: &[Served<'_>], ms: i32) {
    let mut fds: Vec<libc::pollfd> = served
        .iter()
        .filter(|s| s.outgoing.is_idle() && s.session.peer_net().is_some())
        .filter_map(|s| s.tap.as_ref())
        .map(|t| libc::pollfd {
            fd: t.fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `fds` is a live array of `fds.len()` pollfd entries.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
}
