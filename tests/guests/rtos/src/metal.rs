//! The demo RTOS on the metal.

use core::sync::atomic::{AtomicU32, Ordering};

use aarch64_cpu::registers::{Readable, MPIDR_EL1};
use boards::power::Conduit;
use boards::uart::{Console, UartKind};
use partitioner::dt::{DeviceTree, LinkNode};
use partitioner::layout::{EPOCH_OFFSET, TABLE_OFFSET};
use remoteproc::{Incoming, Link, LinkConfig, Role};
use shmem::doorbell::Polling;
use shmem::Window;
use ufmt::{uWrite, uwrite, uwriteln};

core::arch::global_asm!(include_str!("start.s"));

/// The libraries this partition links may allocate; it never does after start.
#[global_allocator]
static HEAP: boards::heap::BumpHeap<{ 64 << 10 }> = boards::heap::BumpHeap::new();

extern "C" {
    fn secondary_entry();
}

/// Messages each side sends the other over each link.
const TEST_MESSAGES: u64 = 100_000;
/// Endpoint addresses: ours are fixed, the peer's are learnt from the name
/// service and from the first message.
const CONSOLE_EP: u32 = 0x400;
const TEST_EP: u32 = 0x401;
const CONSOLE_SERVICE: &[u8] = b"avps-console";
const TEST_SERVICE: &[u8] = b"amp-test";

const MAX_CORES: usize = 8;
const SECONDARY_STACK: usize = 0x4000;

#[repr(C, align(16))]
struct Stacks([[u8; SECONDARY_STACK]; MAX_CORES]);
static mut STACKS: Stacks = Stacks([[0; SECONDARY_STACK]; MAX_CORES]);
static CORES_UP: AtomicU32 = AtomicU32::new(0);

/// A line of log output: to the UART if this partition owns one, else kept to
/// send over the link's AVPS console.
struct Log {
    console: Option<Console>,
    name: &'static str,
    pending: heapless::Vec<heapless::String<120>, 16>,
    line: heapless::String<120>,
}

impl uWrite for Log {
    type Error = core::convert::Infallible;

    fn write_str(&mut self, s: &str) -> Result<(), Self::Error> {
        for c in s.chars() {
            if c == '\n' {
                let line = core::mem::take(&mut self.line);
                match &mut self.console {
                    Some(con) => {
                        let _ = uwriteln!(con, "[{}] {}", self.name, line.as_str());
                    }
                    None => {
                        let _ = self.pending.push(line);
                    }
                }
            } else {
                let _ = self.line.push(c);
            }
        }
        Ok(())
    }
}

fn own_mpidr() -> u64 {
    MPIDR_EL1.get() & 0xff_00ff_ffff
}

fn device_tree(addr: usize) -> Option<DeviceTree<'static>> {
    // SAFETY: the boot stage wrote our device tree at x0, in our memory, and
    // nothing writes it afterwards; its header gives its size.
    let header = unsafe { core::ptr::read_volatile(addr as *const [u8; 8]) };
    let size = partitioner::dt::total_size(&header).filter(|s| *s <= 2 << 20)?;
    // SAFETY: as above, for the whole tree.
    DeviceTree::new(unsafe { core::slice::from_raw_parts(addr as *const u8, size) }).ok()
}

#[no_mangle]
extern "C" fn rtos_main(dtb: usize, base: usize) -> ! {
    let Some(tree) = device_tree(dtb) else { halt() };
    let name = tree.chosen("amp,partition").unwrap_or("rtos");
    let console = tree.stdout().and_then(|n| {
        let kind = UartKind::from_compatibles(n.compatibles())?;
        let base = usize::try_from(n.reg()?.base).ok()?;
        // SAFETY: our device tree names this UART as our console; the boot stage
        // gave it to this partition alone.
        Some(unsafe { Console::new(kind, base) })
    });
    let mut log = Log {
        console,
        name,
        pending: heapless::Vec::new(),
        line: heapless::String::new(),
    };

    let _ = uwrite!(log, "up at {:#x} on core {:#x}; cores", base, own_mpidr());
    for cpu in tree.cpus() {
        let _ = uwrite!(log, " {:#x}", cpu.mpidr.unwrap_or(u64::MAX));
    }
    for m in tree.memory() {
        let _ = uwrite!(log, "; memory {:#x}+{:#x}", m.base, m.size);
    }
    let _ = uwriteln!(log, "");

    // Bring up our other cores.
    let conduit = tree.psci_method().and_then(Conduit::from_method);
    let mut others = 0u32;
    for (i, cpu) in tree.cpus().enumerate().take(MAX_CORES) {
        let Some(mpidr) = cpu.mpidr.filter(|m| *m != own_mpidr()) else {
            continue;
        };
        let stack = (&raw mut STACKS) as usize + (i + 1) * SECONDARY_STACK;
        // SAFETY: secondary_entry sets up the core on its own stack, one per
        // core index, inside this image; the core is ours and not running.
        let ok = conduit.is_some_and(|c| unsafe {
            boards::power::psci_cpu_on(c, mpidr, secondary_entry as *const () as u64, stack as u64)
                .is_ok()
        });
        if ok {
            others += 1;
        }
    }
    while CORES_UP.load(Ordering::Acquire) < others {
        core::hint::spin_loop();
    }
    let _ = uwriteln!(log, "cores up: {}", others + 1);

    let links: heapless::Vec<LinkNode<'_>, 4> = tree.links().take(4).collect();
    let mut done_all = true;
    for l in &links {
        done_all &= serve(&mut log, l);
    }
    if log.console.is_some() {
        let _ = uwriteln!(
            log,
            "all links done: {}",
            if done_all { "ok" } else { "errors" }
        );
        if let Some(c) = conduit {
            if let Some(con) = &log.console {
                con.flush();
            }
            let _ = boards::power::psci_system_off(c);
        }
    }
    halt()
}

#[no_mangle]
extern "C" fn rtos_secondary() -> ! {
    CORES_UP.fetch_add(1, Ordering::Release);
    halt()
}

/// A small xorshift for message contents.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn checksum(bytes: &[u8]) -> u32 {
    partitioner::planfile::crc32(bytes)
}

/// Runs one link to completion: console relay and the message exchange.
/// Returns whether it finished without errors.
fn serve(log: &mut Log, l: &LinkNode<'_>) -> bool {
    let (base, size) = l.window;
    // SAFETY: the window is this link's shared memory (the plan keeps it outside
    // every partition), mapped (MMU off) for the life of the partition, and only
    // reached through `Window` from here on.
    let Ok(window) = (unsafe { Window::from_raw(base as *mut u8, size as usize) }) else {
        let _ = uwriteln!(log, "link {}: window unusable", l.name);
        return false;
    };
    let role = if l.host { Role::Host } else { Role::Remote };
    let off = |a: u64| (a - base) as usize;
    let mut config = LinkConfig::resource_table(
        role,
        TABLE_OFFSET as usize,
        [off(l.vrings[0]), off(l.vrings[1])],
        off(l.buffers),
        l.ring_entries as u16,
    );
    config.header = Some(EPOCH_OFFSET as usize);
    let mut link: Link<'_, Polling, 256, 4> = match Link::new(window, config, Polling) {
        Ok(link) => link,
        Err(_) => {
            let _ = uwriteln!(log, "link {}: cannot set up", l.name);
            return false;
        }
    };
    let has_console = log.console.is_some();
    let (Ok(console_ep), Ok(test_ep)) = (
        link.create_endpoint(Some(CONSOLE_EP)),
        link.create_endpoint(Some(TEST_EP)),
    ) else {
        let _ = uwriteln!(log, "link {}: no endpoints", l.name);
        return false;
    };
    let mut announced = false;

    let (mut peer_console, mut peer_test) = (None::<u32>, None::<u32>);
    let (mut sent, mut received, mut errors) = (0u64, 0u64, 0u64);
    let mut seed: u64 = if l.host { 0x1234_5678 } else { 0x8765_4321 };
    let mut peer_done = !has_console;
    let mut reported = false;
    let mut buf = [0u8; 496];
    loop {
        let _ = link.poll();
        // Announce once the link is up (the name service needs the rings).
        if !announced && link.is_up() {
            announced = true;
            if !has_console {
                let _ = link.announce(console_ep, CONSOLE_SERVICE);
            }
            let _ = link.announce(test_ep, TEST_SERVICE);
        }
        // Console lines waiting for the peer's console endpoint.
        if let Some(dst) = peer_console {
            while let Some(line) = log.pending.first() {
                match link.send(CONSOLE_EP, dst, line.as_bytes()) {
                    Ok(true) => {
                        log.pending.remove(0);
                    }
                    _ => break,
                }
            }
        }
        // Test messages, as fast as the ring takes them.
        if let Some(dst) = peer_test {
            while sent < TEST_MESSAGES {
                let len = 12 + (next(&mut seed) % 400) as usize;
                buf[..8].copy_from_slice(&sent.to_le_bytes());
                for b in &mut buf[8..len - 4] {
                    *b = next(&mut seed) as u8;
                }
                let c = checksum(&buf[..len - 4]);
                buf[len - 4..len].copy_from_slice(&c.to_le_bytes());
                match link.send(TEST_EP, dst, &buf[..len]) {
                    Ok(true) => sent += 1,
                    // Ring full: this sequence number goes again next time.
                    _ => break,
                }
            }
        }
        loop {
            match link.receive() {
                Ok(Some(Incoming::Service(s))) => {
                    if s.name() == CONSOLE_SERVICE {
                        peer_console = Some(s.addr);
                        let _ = link.send(CONSOLE_EP, s.addr, b"");
                    } else if s.name() == TEST_SERVICE {
                        peer_test = Some(s.addr);
                    }
                }
                Ok(Some(Incoming::Message(m))) => {
                    let n = m.copy_to(&mut buf).unwrap_or(0);
                    let (src, dst) = (m.src(), m.dst());
                    let _ = link.release(m);
                    if dst == CONSOLE_EP {
                        if peer_console.is_none() {
                            peer_console = Some(src);
                        }
                        if n > 0 {
                            if let Some(con) = &mut log.console {
                                let line = core::str::from_utf8(&buf[..n]).unwrap_or("?");
                                let _ = uwriteln!(con, "[{}] {}", l.peer, line);
                                if line.starts_with("link ") && line.contains(" received ") {
                                    peer_done = true;
                                }
                            }
                        }
                    } else if dst == TEST_EP {
                        peer_test.get_or_insert(src);
                        let ok = n >= 12
                            && u64::from_le_bytes(buf[..8].try_into().unwrap_or([0; 8]))
                                == received
                            && checksum(&buf[..n - 4])
                                == u32::from_le_bytes(buf[n - 4..n].try_into().unwrap_or([0; 4]));
                        if !ok {
                            errors += 1;
                        }
                        received += 1;
                    }
                }
                _ => break,
            }
        }
        if !reported && sent == TEST_MESSAGES && received == TEST_MESSAGES {
            reported = true;
            let stats = link.stats();
            let _ = uwriteln!(
                log,
                "link {}: sent {}, received {}, errors {}, link errors {}",
                l.name,
                sent,
                received,
                errors,
                stats.ring_errors + stats.message_errors
            );
        }
        if reported && peer_done && log.pending.is_empty() {
            return errors == 0;
        }
    }
}

fn halt() -> ! {
    loop {
        aarch64_cpu::asm::wfe();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    halt()
}
