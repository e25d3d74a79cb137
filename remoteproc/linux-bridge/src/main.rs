//! `avps-bridge`: the Linux end of a partition's shared-memory links, on an
//! unmodified distribution kernel (no rpmsg or UIO drivers needed).
//!
//! It finds the links in `/proc/device-tree/amp-links`, maps each window
//! through `/dev/mem` (the windows lie outside Linux's memory, which a
//! `STRICT_DEVMEM` kernel allows), speaks rpmsg as the host side, and exposes
//! each AVPS console as a pseudo-terminal at `/dev/avps/<link>/console`.
//! It logs what it found, and exits cleanly on SIGTERM or SIGINT.

mod links;
mod pty;

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use remoteproc::{Incoming, Link, LinkConfig, Role};
use shmem::doorbell::Polling;
use shmem::Window;

/// Our console endpoint (the RTOS side logs to it).
const CONSOLE_EP: u32 = 0x400;
const CONSOLE_SERVICE: &[u8] = b"avps-console";
/// Where the window layout keeps the resource table and the epochs
/// (partitioner::layout: TABLE_OFFSET, EPOCH_OFFSET).
const TABLE_OFFSET: usize = 0;
const EPOCH_OFFSET: usize = 0x800;

static STOP: AtomicBool = AtomicBool::new(false);

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
    node: links::LinkNode,
    link: Link<'m, Polling, 256, 4>,
    console: Option<pty::Pty>,
    peer_console: Option<u32>,
    /// The last error logged, so a persisting one is logged once.
    last_error: Option<String>,
}

fn serve(node: links::LinkNode, map: &Mapping) -> Result<Served<'_>, String> {
    // SAFETY: the mapping is the link's window (outside Linux's memory), valid
    // until `map` is dropped, and only reached through this `Window`.
    let window = unsafe { Window::from_raw(map.base, map.len) }
        .map_err(|e| format!("{e:?}"))?
        .with_bus_address(node.window.0);
    let off = |a: u64| {
        a.checked_sub(node.window.0)
            .map(|o| o as usize)
            .ok_or("address outside the window")
    };
    let mut config = LinkConfig::resource_table(
        if node.host { Role::Host } else { Role::Remote },
        TABLE_OFFSET,
        [off(node.vrings[0])?, off(node.vrings[1])?],
        off(node.buffers)?,
        u16::try_from(node.ring_entries).map_err(|_| "ring too large")?,
    );
    config.header = Some(EPOCH_OFFSET);
    let mut link = Link::new(window, config, Polling).map_err(|e| format!("{e:?}"))?;
    link.create_endpoint(Some(CONSOLE_EP))
        .map_err(|e| format!("{e:?}"))?;
    let console = if node
        .devices
        .iter()
        .any(|(k, p)| k == "console" && *p == node.peer)
    {
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
    Ok(Served {
        node,
        link,
        console,
        peer_console: None,
        last_error: None,
    })
}

fn main() {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    let root = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/proc/device-tree".into());
    let (nodes, bad) = links::read(Path::new(&root));
    for b in &bad {
        log(format_args!("{b}: not a well-formed link node, ignored"));
    }
    if nodes.is_empty() {
        log(format_args!("no links in {root}/amp-links; nothing to do"));
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
    for (node, map) in nodes.into_iter().zip(&maps) {
        let Some(map) = map else { continue };
        let name = node.name.clone();
        match serve(node, map) {
            Ok(s) => served.push(s),
            Err(e) => log(format_args!("link {name}: {e}")),
        }
    }
    let mut buf = [0u8; 496];
    let mut idle = 0u32;
    while !STOP.load(Ordering::Relaxed) {
        let mut busy = false;
        for s in &mut served {
            if let Err(e) = s.link.poll() {
                if e.is_fatal() {
                    log(format_args!("link {}: {e:?}; resetting", s.node.name));
                    let _ = s.link.reset();
                    s.peer_console = None;
                }
            }
            loop {
                match s.link.receive() {
                    Ok(Some(Incoming::Service(svc))) => {
                        busy = true;
                        if svc.name() == CONSOLE_SERVICE && svc.created {
                            s.peer_console = Some(svc.addr);
                            // Say hello, so the peer learns where to send.
                            let _ = s.link.send(CONSOLE_EP, svc.addr, b"");
                            log(format_args!(
                                "link {}: {} announced its console",
                                s.node.name, s.node.peer
                            ));
                        }
                    }
                    Ok(Some(Incoming::Message(m))) => {
                        busy = true;
                        let n = m.copy_to(&mut buf).unwrap_or(0);
                        let dst = m.dst();
                        let _ = s.link.release(m);
                        if dst == CONSOLE_EP && n > 0 {
                            if let Some(p) = &mut s.console {
                                p.write_line(&buf[..n]);
                            }
                        }
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
            idle = 0;
        } else {
            // Back off to a millisecond tick when nothing happens.
            idle = idle.saturating_add(1);
            if idle > 1000 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            } else {
                std::hint::spin_loop();
            }
        }
    }
    log(format_args!("stopping"));
}
