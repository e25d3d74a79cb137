//! The demo RTOS on the metal.

use core::cell::RefCell;
use core::sync::atomic::{AtomicU32, Ordering};

use amp_plan::dt::{DeviceTree, LinkNode};
use amp_plan::layout::{ALARMS_OFFSET, EPOCH_OFFSET, HEARTBEAT_OFFSET, TABLE_OFFSET};
use boards::power::Conduit;
use boards::uart::{Console, UartKind};
use remoteproc::avps::net;
use remoteproc::avps::session::{
    DeviceEnd, Devices, Kind, Placement, Polled, Provided, Received, Session, KINDS,
};
use remoteproc::virtio::blk::{Blk, RamDisk};
use remoteproc::virtio::bus::BusDevice;
use remoteproc::virtio::console::{Console as VirtioConsole, ConsolePort};
use remoteproc::virtio::net::Net;
use remoteproc::virtio::VirtioDevice;
use shmem::doorbell::Polling;
use shmem::Window;
use ufmt::{uWrite, uwrite, uwriteln};
use virtio_drivers::device::blk::VirtIOBlk;
use virtio_drivers::device::console::VirtIOConsole;
use virtio_drivers::device::rng::VirtIORng;
use virtio_msg_driver::{MsgTransport, Options, PoolId, SessionBus, WindowHal};

use crate::irq::{Interrupts, ALARMS, DOORBELLS, GAPS};
use crate::net::NetStack;

core::arch::global_asm!(include_str!("start.s"));

/// The libraries this partition links may allocate; it never does after start.
#[global_allocator]
static HEAP: boards::heap::BumpHeap<{ 512 << 10 }> = boards::heap::BumpHeap::new();

extern "C" {
    fn secondary_entry();
}

/// Messages each side sends the other over each link.
const TEST_MESSAGES: u64 = 100_000;
/// The test service's endpoint: ours is fixed (beside the AVPS devices' in
/// `remoteproc::avps`), the peer's is learnt from the name service and from
/// the first message.
const TEST_EP: u32 = 0x401;
const TEST_SERVICE: &[u8] = b"amp-test";

const MAX_CORES: usize = 8;
const SECONDARY_STACK: usize = 0x4000;

#[repr(C, align(16))]
struct Stacks([[u8; SECONDARY_STACK]; MAX_CORES]);
static mut STACKS: Stacks = Stacks([[0; SECONDARY_STACK]; MAX_CORES]);
static CORES_UP: AtomicU32 = AtomicU32::new(0);
/// Spin-table trampolines for our other cores, one per core index.
#[repr(C, align(16))]
struct Trampolines([[u8; 32]; MAX_CORES]);
static mut TRAMPOLINES: Trampolines = Trampolines([[0; 32]; MAX_CORES]);

/// A line of log output: to the UART if this partition owns one, else kept to
/// send over the link's AVPS console.
struct Log {
    console: Option<Console>,
    name: &'static str,
    pending: heapless::Vec<heapless::String<120>, 32>,
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
                        // Sent up a link as it will be printed: with our name.
                        let mut tagged = heapless::String::new();
                        for part in ["[", self.name, "] ", line.as_str()] {
                            let _ = tagged.push_str(part);
                        }
                        let _ = self.pending.push(tagged);
                    }
                }
            } else {
                let _ = self.line.push(c);
            }
        }
        Ok(())
    }
}

fn ticks() -> u64 {
    boards::timer::GenericTimer.ticks()
}

/// The network stack's clock.
fn now() -> smoltcp::time::Instant {
    let t = boards::timer::GenericTimer;
    let micros = u128::from(t.ticks()) * 1_000_000 / u128::from(t.frequency().max(1));
    smoltcp::time::Instant::from_micros(i64::try_from(micros).unwrap_or(i64::MAX))
}

fn own_mpidr() -> u64 {
    boards::mmio::own_affinity()
}

fn device_tree(addr: usize) -> Option<DeviceTree<'static>> {
    // SAFETY: the boot stage wrote our device tree at x0, in our memory, and
    // nothing writes it afterwards; its header gives its size.
    let header = unsafe { core::ptr::read_volatile(addr as *const [u8; 8]) };
    let size = amp_plan::dt::total_size(&header).filter(|s| *s <= 2 << 20)?;
    // SAFETY: as above, for the whole tree.
    DeviceTree::new(unsafe { core::slice::from_raw_parts(addr as *const u8, size) }).ok()
}

#[no_mangle]
extern "C" fn rtos_main(dtb: usize, base: usize) -> ! {
    let Some(tree) = device_tree(dtb) else { halt() };
    let name = tree.partition_name().unwrap_or("rtos");
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
        let entry = secondary_entry as *const () as u64;
        let how = match (
            conduit,
            cpu.release_addr
                .filter(|_| cpu.enable_method == Some("spin-table")),
        ) {
            (Some(c), _) => Some(boards::power::CoreStart::Psci(c)),
            (None, Some(release)) => Some(boards::power::CoreStart::SpinTable(release)),
            (None, None) => None,
        };
        let at = (&raw mut TRAMPOLINES) as u64 + i as u64 * 32;
        // SAFETY: secondary_entry sets up the core on its own stack, one per
        // core index, inside this image; the core is ours and not running;
        // the trampoline slot for this core index lies in this image and
        // nothing else uses it; a release address is the core's own, from
        // our device tree.
        let ok = how.is_some_and(|how| unsafe {
            boards::power::start_core(how, mpidr, entry, stack as u64, at)
        });
        if ok {
            others += 1;
        }
    }
    while CORES_UP.load(Ordering::Acquire) < others {
        core::hint::spin_loop();
    }
    let _ = uwriteln!(log, "cores up: {}", others + 1);

    // Where the boot stage routed our devices' interrupts (GICv3 boards).
    let gicd = tree
        .interrupt_controller()
        .filter(|ic| {
            boards::gic::Version::from_compatibles(ic.compatibles())
                == Some(boards::gic::Version::V3)
        })
        .and_then(|ic| usize::try_from(ic.reg()?.base).ok());
    for path in tree.owned_devices() {
        for intid in tree
            .gic_interrupts(path)
            .iter()
            .filter_map(|s| boards::gic::spi_id(s))
        {
            let Some(base) = gicd else { continue };
            // SAFETY: our device tree names this GICv3 distributor; reading a
            // routing register has no side effect.
            let d = unsafe { boards::gic::Gicv3Distributor::at(base) };
            let _ = uwriteln!(
                log,
                "device {}: interrupt {} routed to core {:#x}",
                path,
                intid,
                d.routed_to(intid).unwrap_or(u64::MAX)
            );
        }
    }

    // The RTC alarm and the doorbell, where this partition has them.
    let irqs = match Interrupts::start(&tree, own_mpidr()) {
        Ok(i) => {
            let _ = uwriteln!(
                log,
                "rtc: alarm every {} s on interrupt {} from second {}",
                crate::irq::PERIOD,
                i.rtc_spi(),
                i.rtc_second
            );
            if let Some(sgi) = i.doorbell {
                let _ = uwriteln!(log, "doorbell: SGI {}, rung by our other core", sgi);
            }
            Some(i)
        }
        Err(why) => {
            let _ = uwriteln!(log, "interrupts: none ({})", why);
            None
        }
    };

    let mut sides: heapless::Vec<LinkEnd, 2> = heapless::Vec::new();
    for l in tree.links() {
        match LinkEnd::open(&l, name, &tree, dtb, &mut log) {
            Some(side) => {
                if sides.push(side).is_err() {
                    let _ = uwriteln!(log, "link {}: more than two links; not served", l.name);
                }
            }
            None => {
                let _ = uwriteln!(log, "link {}: cannot set up", l.name);
            }
        }
    }
    // While a driver waits for an answer on one link, the other link's
    // requests for our devices are answered (a relay in a chain drives one
    // neighbour's console and serves its own to the other).
    if sides.len() == 2 {
        for i in 0..2 {
            let other = sides[1 - i].session;
            let idle: Idle = alloc::boxed::Box::leak(alloc::boxed::Box::new(move || {
                if let Ok(mut s) = other.try_borrow_mut() {
                    s.serve_bus_only();
                }
            }));
            sides[i].idle = Some(idle);
        }
    }
    let ok = run(&mut log, &mut sides, irqs.as_ref());
    if log.console.is_some() {
        let _ = uwriteln!(log, "all links done: {}", if ok { "ok" } else { "errors" });
        // Only a partition given control of the board sees PSCI 0.2 or later
        // (with SYSTEM_OFF) in its tree; others stop here.
        let may_power_off = tree
            .find_compatible(&["arm,psci-0.2", "arm,psci-1.0"])
            .is_some();
        if let (Some(c), Some(con), true) = (conduit, &log.console, may_power_off) {
            con.flush();
            let _ = boards::power::psci_system_off(c);
        }
    }
    halt()
}

#[no_mangle]
extern "C" fn rtos_secondary() -> ! {
    CORES_UP.fetch_add(1, Ordering::Release);
    crate::irq::ring_doorbells(own_mpidr())
}

/// A small xorshift for message contents.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn checksum(bytes: &[u8]) -> u32 {
    amp_plan::crc32(bytes)
}

/// Passes with nothing moving on any link before the partition naps, and how
/// long a nap lasts at most (an interrupt ends it sooner).
const IDLE_BEFORE_NAP: u32 = 64;
const NAP_MICROS: u64 = 200;

/// Seconds between two "alive" lines of a partition without a UART.
const ALIVE_EVERY_S: u64 = 2;

/// The word that ends a partition's last console line: everything it and the
/// partitions behind it had to do is done.
const DONE: &str = " -- done";

/// Our log as a console's input: the bytes of whole lines, waiting for the
/// peer's driver to post buffers.
struct LogPort {
    bytes: heapless::Deque<u8, 2048>,
    /// Bytes the peer's driver wrote to us (nothing here reads a console).
    ignored: u64,
}

impl LogPort {
    /// Queues `line` and its line end, if there is room for both.
    fn push_line(&mut self, line: &str) -> bool {
        if self.bytes.capacity() - self.bytes.len() < line.len() + 1 {
            return false;
        }
        for b in line.bytes().chain(core::iter::once(b'\n')) {
            let _ = self.bytes.push_back(b);
        }
        true
    }
}

impl ConsolePort for LogPort {
    fn output(&mut self, bytes: &[u8]) {
        self.ignored += bytes.len() as u64;
    }

    fn input(&mut self, out: &mut [u8]) -> usize {
        let mut n = 0;
        for slot in out.iter_mut() {
            // Popped only when there is a slot for it.
            let Some(b) = self.bytes.pop_front() else {
                break;
            };
            *slot = b;
            n += 1;
        }
        n
    }
}

/// The devices this partition provides on a link.
struct Ours {
    console: Option<VirtioDevice<'static, VirtioConsole<LogPort>>>,
    net: Option<VirtioDevice<'static, Net<NetStack>>>,
    blk: Option<VirtioDevice<'static, Blk<RamDisk<'static>>>>,
}

impl Provided for Ours {
    fn slots(&mut self) -> [Option<&mut dyn BusDevice>; KINDS] {
        let mut slots: [Option<&mut dyn BusDevice>; KINDS] = [None, None, None, None];
        slots[Kind::Console as usize] = self.console.as_mut().map(|d| d as &mut dyn BusDevice);
        slots[Kind::Net as usize] = self.net.as_mut().map(|d| d as &mut dyn BusDevice);
        slots[Kind::Block as usize] = self.blk.as_mut().map(|d| d as &mut dyn BusDevice);
        slots
    }
}

extern "C" {
    /// The end of this image in memory (`link.ld`).
    static __image_end: u8;
}

/// The size of the RAM disk a link's `block` device serves when the tree
/// gives none.
const DEFAULT_DISK: u64 = 8 << 20;

/// The RAM disk this partition serves: the `size` bytes of the memory
/// range holding the image that end where the device tree starts (or at
/// the range's end), if the image ends below them. Taken once (one disk
/// per partition).
fn ram_disk(
    tree: &DeviceTree<'_>,
    dtb: usize,
    size: u64,
) -> Result<&'static mut [u8], &'static str> {
    static TAKEN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    let image = (&raw const __image_end) as u64;
    let range = tree
        .memory()
        .find(|m| m.base <= image && image <= m.base + m.size)
        .ok_or("no memory range holds the image")?;
    // The boot stage keeps the device tree (and the cores' trampolines)
    // at the top of the range: the disk ends below it.
    let top = range.base + range.size;
    let dtb = dtb as u64 & !0xfff;
    let end = if (range.base..top).contains(&dtb) {
        dtb
    } else {
        top
    };
    let start = end.checked_sub(size).ok_or("larger than the memory")?;
    if start < image.next_multiple_of(0x1000) {
        return Err("no room in memory between the image and the device tree");
    }
    if TAKEN.swap(true, Ordering::AcqRel) {
        return Err("one disk per partition");
    }
    // SAFETY: `start..end` is this partition's own memory (its device tree's
    // range), above the image (so no stack, heap or static lies there) and
    // not the device tree; taken once, so this is the only reference.
    Ok(unsafe { core::slice::from_raw_parts_mut(start as *mut u8, size as usize) })
}

impl Ours {
    fn log(&mut self) -> Option<&mut VirtioConsole<LogPort>> {
        self.console.as_mut().map(|d| d.model_mut())
    }

    fn stack(&mut self) -> Option<&mut NetStack> {
        self.net.as_mut().map(|d| d.model_mut().port_mut())
    }
}

type LinkSession = Session<'static, Polling, Ours>;
type Transport = MsgTransport<SessionBus<'static, 'static, Polling, Ours>>;

/// What serves this partition's other links while a driver waits on one.
type Idle = &'static dyn Fn();

/// How long a request to the peer's device waits for its answer, and how
/// long after a failed start a driver is tried again.
const ANSWER_WAIT_US: u64 = 2_000_000;
const RETRY_US: u64 = 100_000;

fn micros() -> u64 {
    let t = boards::timer::GenericTimer;
    (u128::from(t.ticks()) * 1_000_000 / u128::from(t.frequency().max(1))) as u64
}

/// The peer's console, read line by line.
struct PeerConsole {
    driver: VirtIOConsole<WindowHal, Transport>,
    line: heapless::String<120>,
}

/// One link, from this partition's side.
struct LinkEnd {
    /// The link's AVPS session (the link itself is `session.link`), for the
    /// life of the partition: the drivers' buses borrow it.
    session: &'static RefCell<LinkSession>,
    /// The window, for the heartbeat counter.
    window: Window<'static>,
    name: &'static str,
    /// The partition at the other end.
    peer: &'static str,
    devices: Devices,
    test_ep: remoteproc::Endpoint,
    /// The test service is announced (once our drivers run).
    test_announced: bool,
    /// The link came up: measure the stack alone and log it.
    measure: bool,
    /// Echo connections whose end was logged.
    closed_logged: u64,
    peer_test: Option<u32>,
    /// The peer (and everything behind it) reported done.
    peer_done: bool,
    /// A test message waiting to be relayed onto this side.
    relay: Option<([u8; 496], usize)>,
    /// Where this side's virtio drivers live in the window, when the peer
    /// provides a device.
    pool: Option<PoolId>,
    /// Serves our other links while a driver here waits.
    idle: Option<Idle>,
    /// The peer's console, once its driver runs.
    console: Option<PeerConsole>,
    /// When a failed driver start may be tried again (microseconds).
    retry_at: u64,
    /// The peer's bus came: draw entropy from it.
    entropy_due: bool,
    /// The peer's bus came: check the disk it provides.
    disk_due: bool,
    /// What the disk check found, to be logged.
    disk: Option<Result<DiskCheck, &'static str>>,
    /// What the entropy request got, to be logged.
    entropy: Option<Result<[u8; ENTROPY], &'static str>>,
    /// Why the console driver did not start, to be logged.
    console_failed: Option<&'static str>,
}

/// Entropy bytes asked of the peer's entropy device each time its bus is
/// announced.
const ENTROPY: usize = 32;

/// Sectors of the pattern written to the peer's disk each time its bus is
/// announced.
const DISK_PATTERN_SECTORS: usize = 128;

/// Byte `i` of sector `s` of the pattern (the end-to-end test reads it
/// back from the disk's file).
fn disk_pattern(s: usize, i: usize) -> u8 {
    (s.wrapping_mul(7).wrapping_add(i) as u8) ^ 0x5a
}

/// What the disk check found.
struct DiskCheck {
    capacity: u64,
}

impl LinkEnd {
    fn open(
        l: &LinkNode<'static>,
        me: &str,
        tree: &DeviceTree<'_>,
        dtb: usize,
        log: &mut Log,
    ) -> Option<Self> {
        let (base, size) = l.window;
        // SAFETY: the window is this link's shared memory (the plan keeps it
        // outside every partition), mapped (MMU off) for the life of the
        // partition, and only reached through `Window` (and the drivers'
        // pool inside it) from here on.
        let window = unsafe { Window::from_raw(base as *mut u8, size as usize) }
            .ok()?
            // Ring addresses are physical, as Linux's remoteproc writes them.
            .with_bus_address(base);
        let placement = Placement {
            host: l.host,
            window: base,
            vrings: l.vrings,
            buffers: l.buffers,
            ring_entries: l.ring_entries,
            table: TABLE_OFFSET as usize,
            header: EPOCH_OFFSET as usize,
        };
        let devices = Devices::of(me, l.devices());
        let provides = |k| devices.has(k, DeviceEnd::Provides);
        let console = provides(Kind::Console).then(|| {
            let port = LogPort {
                bytes: heapless::Deque::new(),
                ignored: 0,
            };
            VirtioDevice::new(VirtioConsole::new(port), window)
        });
        let net = provides(Kind::Net).then(|| {
            let subnet = l
                .net_subnet()
                .map_or(net::Subnet::DEFAULT, |(addr, prefix_len)| net::Subnet {
                    addr,
                    prefix_len,
                });
            let stack = NetStack::new(now(), own_mpidr() ^ ticks(), subnet);
            let mtu = net::MTU as u16;
            VirtioDevice::new(Net::new(stack, net::PROVIDER_MAC, mtu), window)
        });
        let blk = provides(Kind::Block).then(|| {
            let size = l.block_size(me).unwrap_or(DEFAULT_DISK);
            let disk = match ram_disk(tree, dtb, size) {
                Ok(d) => {
                    let _ = uwriteln!(
                        log,
                        "link {}: disk for {}: {} KiB of RAM (virtio-blk)",
                        l.name,
                        l.peer,
                        size >> 10
                    );
                    d
                }
                Err(why) => {
                    // Numbered as the tree says, but empty: the peer sees a
                    // disk of no sectors.
                    let _ = uwriteln!(log, "link {}: no disk for {}: {}", l.name, l.peer, why);
                    &mut []
                }
            };
            VirtioDevice::new(Blk::new(RamDisk(disk), b"amp ram disk", false), window)
        });
        let mut session = Session::open(
            window,
            placement.config()?,
            Polling,
            devices,
            Ours { console, net, blk },
        )
        .ok()?;
        let _ = window.write_u32(HEARTBEAT_OFFSET as usize, 0);
        let test_ep = session.link.create_endpoint(Some(TEST_EP)).ok()?;
        let pool = match devices.any(DeviceEnd::Uses) {
            true => {
                let (at, len) = amp_plan::layout::virtio_pool(size, l.host)?;
                let at = base + at;
                // SAFETY: the pool is this side's half of the window's
                // virtio pages (the plan's layout), physical = virtual with
                // the MMU off, mapped for the life of the partition and
                // touched by nothing else here; the peer reaches it through
                // its window.
                Some(unsafe { WindowHal::add_pool(at as *mut u8, at, len as usize) }?)
            }
            false => None,
        };
        let session: &'static RefCell<LinkSession> =
            alloc::boxed::Box::leak(alloc::boxed::Box::new(RefCell::new(session)));
        Some(LinkEnd {
            session,
            window,
            name: l.name,
            peer: l.peer,
            devices,
            test_ep,
            test_announced: false,
            measure: false,
            closed_logged: 0,
            peer_test: None,
            peer_done: false,
            relay: None,
            pool,
            idle: None,
            console: None,
            retry_at: 0,
            entropy_due: false,
            disk_due: false,
            disk: None,
            entropy: None,
            console_failed: None,
        })
    }

    fn uses(&self, kind: Kind) -> bool {
        self.devices.has(kind, DeviceEnd::Uses)
    }

    /// The peer provides the link's AVPS console: we read its output (its
    /// log) and print or forward it.
    fn console_sink(&self) -> bool {
        self.uses(Kind::Console)
    }

    /// Every driver this side needs runs (and the entropy is drawn).
    fn drivers_ready(&self) -> bool {
        (!self.uses(Kind::Console) || self.console.is_some()) && !self.entropy_due && !self.disk_due
    }

    /// Brings the link along: starts our drivers once the peer's bus is
    /// there, and announces our test service once they run.
    fn poll(&mut self) {
        let polled = self.session.borrow_mut().poll();
        match polled {
            Polled::Reset(_) => {
                self.peer_test = None;
                self.test_announced = false;
                self.console = None;
                self.entropy_due = false;
                self.disk_due = false;
                if let Some(pool) = self.pool {
                    WindowHal::clear_pool(pool);
                }
                if let Some(stack) = self.session.borrow_mut().provided.stack() {
                    stack.reset();
                }
            }
            Polled::Up => {
                let has_net = self.session.borrow_mut().provided.stack().is_some();
                self.measure = has_net;
            }
            Polled::Quiet => {}
        }
        self.start_drivers();
        if !self.test_announced && self.drivers_ready() && self.session.borrow().link.is_up() {
            let mut s = self.session.borrow_mut();
            self.test_announced = s.link.announce(self.test_ep, TEST_SERVICE).is_ok();
        }
        if let Some(stack) = self.session.borrow_mut().provided.stack() {
            stack.poll(now());
        }
    }

    /// Starts what does not run yet of our drivers, if the peer's bus is
    /// announced.
    fn start_drivers(&mut self) {
        if !self.session.borrow().peer_bus() || micros() < self.retry_at {
            return;
        }
        let Some(pool) = self.pool else { return };
        WindowHal::select(pool);
        if self.entropy_due {
            self.entropy_due = false;
            self.entropy = Some(self.request_entropy());
        }
        if self.disk_due {
            self.disk_due = false;
            self.disk = Some(self.check_disk());
        }
        if self.uses(Kind::Console) && self.console.is_none() {
            match self.start_console() {
                Ok(c) => self.console = Some(c),
                Err(why) => {
                    self.console_failed = Some(why);
                    self.retry_at = micros() + RETRY_US;
                }
            }
        }
    }

    fn transport(&self, kind: Kind, kicks_wait: bool) -> Result<Transport, &'static str> {
        let dev_num = self
            .devices
            .dev_num(kind, DeviceEnd::Uses)
            .ok_or("no such device")?;
        let mut bus = SessionBus::new(self.session);
        if let Some(idle) = self.idle {
            bus = bus.with_idle(idle);
        }
        let options = Options::default()
            .patience_micros(ANSWER_WAIT_US, micros)
            .kicks_wait(kicks_wait);
        MsgTransport::with(bus, dev_num, options).map_err(|_| "no answer from the device")
    }

    // Out of line, as `request_entropy`.
    #[inline(never)]
    fn start_console(&mut self) -> Result<PeerConsole, &'static str> {
        // Only `recv` is used, which never blocks: kicks need not wait.
        let t = self.transport(Kind::Console, false)?;
        let driver = VirtIOConsole::<WindowHal, _>::new(t).map_err(|_| "driver did not start")?;
        Ok(PeerConsole {
            driver,
            line: heapless::String::new(),
        })
    }

    /// Asks the peer's entropy device for bytes: virtio-drivers' own
    /// `VirtIORng` over virtio-msg on this link, its virtqueue in our part
    /// of the window.
    // Out of line: the driver, its transport and their buffers make a large
    // frame that the per-pass poll should not carry.
    #[inline(never)]
    fn request_entropy(&mut self) -> Result<[u8; ENTROPY], &'static str> {
        let transport = self.transport(Kind::Rng, true)?;
        let mut rng =
            VirtIORng::<WindowHal, _>::new(transport).map_err(|_| "driver did not start")?;
        let mut bytes = [0u8; ENTROPY];
        match rng.request_entropy(&mut bytes) {
            Ok(ENTROPY) => Ok(bytes),
            Ok(_) => Err("short read"),
            Err(_) => Err("request failed"),
        }
    }

    /// Writes [`DISK_PATTERN_SECTORS`] sectors of a pattern to the start of
    /// the peer's disk with virtio-drivers' `VirtIOBlk`, flushes, reads
    /// them back and compares.
    // Out of line, as `request_entropy`.
    #[inline(never)]
    fn check_disk(&mut self) -> Result<DiskCheck, &'static str> {
        let transport = self.transport(Kind::Block, true)?;
        let mut blk =
            VirtIOBlk::<WindowHal, _>::new(transport).map_err(|_| "driver did not start")?;
        let capacity = blk.capacity();
        if capacity < DISK_PATTERN_SECTORS as u64 {
            return Err("disk too small for the pattern");
        }
        let mut sector = [0u8; 512];
        for s in 0..DISK_PATTERN_SECTORS {
            for (i, b) in sector.iter_mut().enumerate() {
                *b = disk_pattern(s, i);
            }
            blk.write_blocks(s, &sector).map_err(|_| "write failed")?;
        }
        blk.flush().map_err(|_| "flush failed")?;
        for s in 0..DISK_PATTERN_SECTORS {
            blk.read_blocks(s, &mut sector).map_err(|_| "read failed")?;
            if sector
                .iter()
                .enumerate()
                .any(|(i, b)| *b != disk_pattern(s, i))
            {
                return Err("read back differs");
            }
        }
        Ok(DiskCheck { capacity })
    }

    /// The next whole line the peer's console wrote, if one is complete.
    fn console_line(&mut self) -> Option<heapless::String<120>> {
        let c = self.console.as_mut()?;
        if let Some(pool) = self.pool {
            WindowHal::select(pool);
        }
        loop {
            match c.driver.recv(true) {
                Ok(Some(b'\n')) => return Some(core::mem::take(&mut c.line)),
                Ok(Some(b)) => {
                    if c.line.push(char::from(b)).is_err() {
                        return Some(core::mem::take(&mut c.line));
                    }
                }
                Ok(None) => return None,
                Err(_) => {
                    // The device failed or the link went: start again.
                    self.console = None;
                    self.retry_at = micros() + RETRY_US;
                    if let Some(pool) = self.pool {
                        WindowHal::clear_pool(pool);
                    }
                    return None;
                }
            }
        }
    }

    /// Whether every byte of our log given to the console device reached
    /// the peer's buffers.
    fn log_delivered(&self) -> bool {
        let mut s = self.session.borrow_mut();
        s.provided
            .log()
            .is_none_or(|c| c.undelivered() == 0 && c.port().bytes.is_empty())
    }
}

/// What arrived on one side in one pass.
enum Arrival {
    Line(heapless::String<120>),
    Test([u8; 496], usize),
}

/// Serves every link until this partition and every partition behind its
/// links are done. Endpoints of a chain (one link) send and check
/// TEST_MESSAGES messages; a partition on two links relays between them.
fn run(log: &mut Log, sides: &mut [LinkEnd], irqs: Option<&Interrupts>) -> bool {
    let relay = sides.len() == 2;
    let (mut sent, mut received, mut errors, mut relayed) = (0u64, 0u64, 0u64, 0u64);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ (own_mpidr() + 1);
    let mut finished = false;
    let mut buf = [0u8; 496];
    let mut beats: u32 = 0;
    let check_every = boards::timer::GenericTimer.frequency() * crate::irq::CHECK_MS / 1000;
    let mut last_check = ticks();
    let mut alarms_logged = 0;
    let (mut last_moved, mut idle) = (0u64, 0u32);
    let alive_every = boards::timer::GenericTimer.frequency() * ALIVE_EVERY_S;
    let (mut last_alive, mut alives) = (ticks(), 0u32);
    loop {
        if let Some(irqs) = irqs {
            if ticks().wrapping_sub(last_check) >= check_every {
                last_check = ticks();
                if let Some(u) = irqs.check() {
                    let _ = uwriteln!(
                        log,
                        "gic: another OS reset interrupt {} (enabled {}, routed to core {:#x}); restored, after {} alarms",
                        u.intid,
                        u.was_enabled,
                        u.was_routed_to,
                        ALARMS.load(Ordering::Acquire)
                    );
                }
            }
            let alarms = ALARMS.load(Ordering::Acquire);
            if alarms != alarms_logged {
                alarms_logged = alarms;
                for side in sides.iter() {
                    let _ = side.window.write_u32(ALARMS_OFFSET as usize, alarms);
                }
                // Every alarm while the console may be unread; then every 8th.
                if alarms <= 16 || alarms % 8 == 0 {
                    let _ = uwriteln!(
                        log,
                        "rtc alarm {}: {} periods missed, {} doorbells",
                        alarms,
                        GAPS.load(Ordering::Relaxed),
                        DOORBELLS.load(Ordering::Relaxed)
                    );
                }
            }
        }
        for side in sides.iter_mut() {
            side.poll();
        }
        beats = beats.wrapping_add(1);
        if beats % 1024 == 0 {
            for side in sides.iter() {
                let _ = side
                    .window
                    .write_u32(HEARTBEAT_OFFSET as usize, beats / 1024);
            }
        }
        for side in sides.iter_mut() {
            if side.measure {
                side.measure = false;
                measure_stack(log);
            }
            match side.entropy.take() {
                Some(Ok(bytes)) => {
                    // One line of at most 120 characters, tag included.
                    let _ = uwrite!(log, "entropy from {} (virtio-rng): ", side.peer);
                    for b in bytes {
                        let _ = uwrite!(log, "{:02x}", b);
                    }
                    let _ = uwriteln!(log, "");
                }
                Some(Err(why)) => {
                    let _ = uwriteln!(log, "entropy: none from {} ({})", side.peer, why);
                }
                None => {}
            }
            match side.disk.take() {
                Some(Ok(d)) => {
                    let _ = uwriteln!(
                        log,
                        "disk from {} (virtio-blk): {} of {} sectors written, flushed, read back identical",
                        side.peer,
                        DISK_PATTERN_SECTORS,
                        d.capacity
                    );
                }
                Some(Err(why)) => {
                    let _ = uwriteln!(log, "disk from {}: {}", side.peer, why);
                }
                None => {}
            }
            if let Some(why) = side.console_failed.take() {
                let _ = uwriteln!(
                    log,
                    "link {}: console driver for {}: {}; trying again",
                    side.name,
                    side.peer,
                    why
                );
            }
            // Each finished echo connection: what the network device did.
            let net = side.session.borrow_mut().provided.net.as_mut().map(|d| {
                let dropped = d.model().stats.dropped;
                (d.model_mut().port_mut().stats, dropped)
            });
            if let Some((st, dropped)) = net {
                if st.closed != side.closed_logged {
                    side.closed_logged = st.closed;
                    let _ = uwriteln!(
                        log,
                        "net: {} echo connections done; frames in {}, out {}, overruns {}, dropped {}",
                        st.closed,
                        st.frames_in,
                        st.frames_out,
                        st.overruns,
                        dropped
                    );
                }
            }
        }
        // A partition without a UART also says it is alive on its console now
        // and then, so a reader that comes (or comes back) later sees it.
        if log.console.is_none()
            && ticks().wrapping_sub(last_alive) >= alive_every
            && log.pending.len() < 8
        {
            last_alive = ticks();
            alives += 1;
            let _ = uwriteln!(log, "alive {}", alives);
        }
        // Our log lines go to the console we provide: the peer reads it.
        if let Some(up) = sides
            .iter()
            .find(|s| s.devices.has(Kind::Console, DeviceEnd::Provides))
        {
            let mut session = up.session.borrow_mut();
            if let Some(console) = session.provided.log() {
                while let Some(line) = log.pending.first() {
                    if !console.port_mut().push_line(line) {
                        break;
                    }
                    log.pending.remove(0);
                }
            }
        }
        // Endpoints originate test traffic on their one link.
        if !relay {
            if let Some(side) = sides.first_mut() {
                if let (Some(dst), true) = (side.peer_test, side.test_announced) {
                    let mut session = side.session.borrow_mut();
                    while sent < TEST_MESSAGES {
                        let len = 12 + (next(&mut seed) % 400) as usize;
                        buf[..8].copy_from_slice(&sent.to_le_bytes());
                        for b in &mut buf[8..len - 4] {
                            *b = next(&mut seed) as u8;
                        }
                        let c = checksum(&buf[..len - 4]);
                        buf[len - 4..len].copy_from_slice(&c.to_le_bytes());
                        match session.link.send(TEST_EP, dst, &buf[..len]) {
                            Ok(true) => sent += 1,
                            // Ring full: this sequence number goes again next time.
                            _ => break,
                        }
                    }
                }
            }
        }
        // Relayed messages waiting for room on their way out.
        for side in sides.iter_mut() {
            if let (Some((bytes, n)), Some(dst)) = (side.relay.as_ref(), side.peer_test) {
                let sent = side
                    .session
                    .borrow_mut()
                    .link
                    .send(TEST_EP, dst, &bytes[..*n]);
                if let Ok(true) = sent {
                    side.relay = None;
                    relayed += 1;
                }
            }
        }
        for i in 0..sides.len() {
            // A relay takes no new message while the last one still waits.
            let other = 1 - i.min(1);
            if relay && sides[other].relay.is_some() {
                continue;
            }
            let arrival = receive(&mut sides[i]);
            match arrival {
                Some(Arrival::Line(line)) => {
                    // The peer's own last line (not one it forwards).
                    let peer = sides[i].peer;
                    let from_peer = line
                        .strip_prefix('[')
                        .and_then(|l| l.strip_prefix(peer))
                        .is_some_and(|l| l.starts_with("] "));
                    if from_peer && line.ends_with(DONE) {
                        sides[i].peer_done = true;
                    }
                    match &mut log.console {
                        Some(con) => {
                            let _ = uwriteln!(con, "{}", line.as_str());
                        }
                        None => {
                            let _ = log.pending.push(line);
                        }
                    }
                }
                Some(Arrival::Test(bytes, n)) if relay => sides[other].relay = Some((bytes, n)),
                Some(Arrival::Test(bytes, n)) => {
                    let ok = n >= 12
                        && u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8])) == received
                        && checksum(&bytes[..n - 4])
                            == u32::from_le_bytes(bytes[n - 4..n].try_into().unwrap_or([0; 4]));
                    if !ok {
                        errors += 1;
                    }
                    received += 1;
                }
                None => {}
            }
        }
        let behind_done = sides
            .iter()
            .filter(|s| s.console_sink())
            .all(|s| s.peer_done);
        let own_done = if relay {
            relayed >= 2 * TEST_MESSAGES
        } else {
            sent == TEST_MESSAGES && received == TEST_MESSAGES
        };
        if !finished && own_done && behind_done {
            finished = true;
            let link_errors: u32 = sides
                .iter()
                .map(|s| {
                    let st = s.session.borrow().link.stats();
                    st.ring_errors + st.message_errors
                })
                .sum();
            if relay {
                let _ = uwriteln!(
                    log,
                    "relayed {} messages between {} and {}, link errors {}{}",
                    relayed,
                    sides[0].name,
                    sides[1].name,
                    link_errors,
                    DONE
                );
            } else {
                let _ = uwriteln!(
                    log,
                    "link {}: sent {}, received {}, errors {}, link errors {}{}",
                    sides.first().map_or("-", |s| s.name),
                    sent,
                    received,
                    errors,
                    link_errors,
                    DONE
                );
            }
        }
        if finished && log.pending.is_empty() && sides.iter().all(|s| s.log_delivered()) {
            return errors == 0;
        }
        // Nothing moved on any link for a while: sleep a little, where this
        // partition takes interrupts.
        let moved: u64 = sides
            .iter()
            .map(|s| {
                let st = s.session.borrow().link.stats();
                st.sent + st.received
            })
            .sum();
        if moved != last_moved {
            last_moved = moved;
            idle = 0;
        } else {
            idle += 1;
            if let (Some(irqs), true) = (irqs, idle >= IDLE_BEFORE_NAP) {
                irqs.nap(NAP_MICROS);
            }
        }
    }
}

/// Logs what our network stack does alone (a loopback interface, no link),
/// the floor to set the link's figures against: a 0-byte ICMP echo round
/// trip (median of 5 runs of 1,000) each time the link comes up, and, once a
/// boot, 1 MiB of TCP echo (median of 5).
fn measure_stack(log: &mut Log) {
    const ROUNDS: u32 = 1000;
    let freq = boards::timer::GenericTimer.frequency().max(1);
    let mut runs = [0u64; 5];
    for r in &mut runs {
        match crate::net::loopback_echo(ROUNDS, || (now(), ticks())) {
            Some(t) => *r = t,
            None => {
                let _ = uwriteln!(log, "net: loopback echo lost a reply");
                return;
            }
        }
    }
    runs.sort_unstable();
    let ns = u128::from(runs[2]) * 1_000_000_000 / u128::from(freq) / u128::from(ROUNDS);
    let _ = uwriteln!(
        log,
        "net: 0-byte echo through the stack alone (loopback): {} ns per round trip, median of 5 x {}",
        ns as u64,
        ROUNDS
    );
    // TCP echo of 1 MiB, as `avps-bridge echo` does over the link: once a boot.
    static TCP_MEASURED: core::sync::atomic::AtomicBool =
        core::sync::atomic::AtomicBool::new(false);
    if TCP_MEASURED.swap(true, Ordering::Relaxed) {
        return;
    }
    const BYTES: usize = 1 << 20;
    let mut tcp = crate::net::TcpLoopback::new();
    for r in &mut runs {
        match tcp.run(BYTES, || (now(), ticks())) {
            Some(t) => *r = t,
            None => {
                let _ = uwriteln!(log, "net: loopback TCP echo failed");
                return;
            }
        }
    }
    runs.sort_unstable();
    let kib_s = (BYTES as u128 / 1024) * u128::from(freq) / u128::from(runs[2].max(1));
    let _ = uwriteln!(
        log,
        "net: 1 MiB TCP echo through the stack alone (loopback): {} KiB/s, median of 5",
        kib_s as u64
    );
}

/// One thing from a side: a line of the peer's console, or a test message.
/// Announcements are taken here.
fn receive(side: &mut LinkEnd) -> Option<Arrival> {
    if let Some(line) = side.console_line() {
        return Some(Arrival::Line(line));
    }
    let mut bytes = [0u8; 496];
    loop {
        let received = side.session.borrow_mut().receive();
        match received {
            Ok(Some(Received::Service(s))) if s.name() == TEST_SERVICE => {
                side.peer_test = Some(s.addr);
            }
            Ok(Some(Received::PeerBus)) => {
                // A new bus (the peer started, or started again): a new draw,
                // a new disk check.
                side.entropy_due = side.uses(Kind::Rng);
                side.disk_due = side.uses(Kind::Block);
            }
            Ok(Some(Received::Service(_))) => {}
            Ok(Some(Received::Message(m))) => {
                let n = m.copy_to(&mut bytes).unwrap_or(0);
                let (src, dst) = (m.src(), m.dst());
                let _ = side.session.borrow_mut().link.release(m);
                if dst == TEST_EP {
                    side.peer_test.get_or_insert(src);
                    return Some(Arrival::Test(bytes, n));
                }
            }
            Ok(None) | Err(_) => return None,
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
