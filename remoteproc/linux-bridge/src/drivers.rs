//! Linux's ends of the virtio devices on a link: the devices it provides
//! (entropy from `getrandom`, a disk from a file or block device), and
//! `virtio-drivers`' own drivers for the devices the peer provides, each
//! tied to the Linux interface its users already have (the console to a
//! pty, the network device to a TAP interface, the disk to `/dev/nbdN`).
//!
//! After a driver starts, only non-blocking calls are made on it: the
//! bridge serves its own devices and its other links in the same loop.

use std::time::{Duration, Instant};

use std::os::unix::fs::FileExt;

use remoteproc::avps::net::MAX_FRAME;
use remoteproc::avps::session::{DeviceEnd, Devices, Kind, Provided, Session, KINDS};
use remoteproc::virtio::blk::{Blk, BlockStore, IoError, SECTOR};
use remoteproc::virtio::bus::BusDevice;
use remoteproc::virtio::rng::{Entropy, Rng};
use remoteproc::virtio::VirtioDevice;
use shmem::doorbell::Polling;
use virtio_drivers::device::blk::VirtIOBlk;
use virtio_drivers::device::console::VirtIOConsole;
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_msg_driver::{MsgTransport, Options, PoolId, SessionBus, TransportError, WindowHal};

use crate::{nbd, pty, tap};

/// Entropy from Linux's pool.
pub(crate) struct GetRandom;

impl Entropy for GetRandom {
    fn fill(&mut self, out: &mut [u8]) -> usize {
        // SAFETY: `out` is writable for its length.
        let n = unsafe { libc::getrandom(out.as_mut_ptr().cast(), out.len(), 0) };
        usize::try_from(n).unwrap_or(0)
    }
}

/// A disk Linux provides: a file or a block device, read and written in
/// place; a flush is `fdatasync`.
pub(crate) struct FileDisk {
    file: Option<std::fs::File>,
    sectors: u64,
}

impl FileDisk {
    /// `path`, opened for reading and writing; its size in whole sectors.
    pub(crate) fn open(path: &std::path::Path) -> std::io::Result<Self> {
        use std::io::{Seek, SeekFrom};
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        // A block device's size is where its end is, not its metadata's.
        let bytes = file.seek(SeekFrom::End(0))?;
        Ok(FileDisk {
            file: Some(file),
            sectors: bytes / SECTOR as u64,
        })
    }

    /// A disk of no sectors, for a backing that cannot be opened.
    pub(crate) fn empty() -> Self {
        FileDisk {
            file: None,
            sectors: 0,
        }
    }

    fn file(&self) -> Result<&std::fs::File, IoError> {
        self.file.as_ref().ok_or(IoError)
    }

    fn at(&self, sector: u64, len: usize) -> Result<u64, IoError> {
        let end = sector.checked_add((len / SECTOR) as u64).ok_or(IoError)?;
        (end <= self.sectors)
            .then_some(sector * SECTOR as u64)
            .ok_or(IoError)
    }
}

impl BlockStore for FileDisk {
    fn sectors(&self) -> u64 {
        self.sectors
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), IoError> {
        let at = self.at(sector, buf.len())?;
        self.file()?.read_exact_at(buf, at).map_err(|_| IoError)
    }
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), IoError> {
        let at = self.at(sector, buf.len())?;
        self.file()?.write_all_at(buf, at).map_err(|_| IoError)
    }
    fn flush(&mut self) -> Result<(), IoError> {
        self.file()?.sync_data().map_err(|_| IoError)
    }
    fn write_zeroes(&mut self, sector: u64, count: u64) -> Result<(), IoError> {
        let zero = vec![0u8; 64 << 10];
        let mut done = 0;
        while done < count {
            let n = (count - done).min((zero.len() / SECTOR) as u64);
            self.write(sector + done, &zero[..n as usize * SECTOR])?;
            done += n;
        }
        Ok(())
    }
}

/// The devices Linux provides on a link.
pub(crate) struct LinuxDevices {
    pub(crate) blk: Option<VirtioDevice<'static, Blk<FileDisk>>>,
    pub(crate) rng: Option<VirtioDevice<'static, Rng<GetRandom>>>,
}

impl Provided for LinuxDevices {
    fn slots(&mut self) -> [Option<&mut dyn BusDevice>; KINDS] {
        let mut slots: [Option<&mut dyn BusDevice>; KINDS] = [None, None, None, None];
        slots[Kind::Block as usize] = self.blk.as_mut().map(|d| d as &mut dyn BusDevice);
        slots[Kind::Rng as usize] = self.rng.as_mut().map(|d| d as &mut dyn BusDevice);
        slots
    }
}

/// A link's session, for the life of the bridge.
pub(crate) type LinkSession = Session<'static, Polling, LinuxDevices>;
type Transport = MsgTransport<SessionBus<'static, 'static, Polling, LinuxDevices>>;

/// How long one request to the peer's device waits for its answer.
const ANSWER_WAIT: Duration = Duration::from_millis(500);
/// How long after a failed start a driver is tried again.
const RETRY: Duration = Duration::from_millis(200);
/// Receive buffers the network driver keeps posted, and frames in flight.
const NET_RX: usize = 16;
const NET_TX: usize = 8;
/// A buffer: the virtio-net header, then the largest frame.
const NET_BUF: usize = 12 + MAX_FRAME;

fn micros() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// A transport to device `kind` of the peer's bus on `session`.
fn transport(
    session: &'static std::cell::RefCell<LinkSession>,
    kind: Kind,
    kicks_wait: bool,
) -> Result<Transport, TransportError> {
    let dev_num = session
        .borrow()
        .devices()
        .dev_num(kind, DeviceEnd::Uses)
        .ok_or(TransportError::Answer)?;
    let options = Options::default()
        .patience_micros(ANSWER_WAIT.as_micros() as u64, micros)
        .kicks_wait(kicks_wait);
    MsgTransport::with(SessionBus::new(session), dev_num, options)
}

/// The peer's console, read into a pty line by line.
pub(crate) struct ConsoleEnd {
    driver: VirtIOConsole<WindowHal, Transport>,
    line: Vec<u8>,
}

impl ConsoleEnd {
    /// Moves what the peer wrote to `pty`; whether anything came.
    fn pump(&mut self, pty: &mut pty::Pty) -> Result<bool, virtio_drivers::Error> {
        let mut any = false;
        while let Some(b) = self.driver.recv(true)? {
            any = true;
            match b {
                b'\n' => {
                    pty.write_line(&self.line);
                    self.line.clear();
                }
                b'\r' => {}
                b => self.line.push(b),
            }
            if self.line.len() >= 4096 {
                pty.write_line(&self.line);
                self.line.clear();
            }
        }
        Ok(any)
    }
}

/// The peer's network device, bridged to a TAP interface.
pub(crate) struct NetEnd {
    driver: VirtIONetRaw<WindowHal, Transport, 32>,
    /// Receive buffers, each posted under its token.
    rx: Vec<(u16, Box<[u8; NET_BUF]>)>,
    /// Frames on their way out, each under its token.
    tx: Vec<(u16, Box<[u8; NET_BUF]>)>,
    /// Frames dropped: too long, or the TAP refused them.
    pub(crate) dropped: u64,
}

impl NetEnd {
    fn start(transport: Transport) -> Result<Self, virtio_drivers::Error> {
        let mut end = NetEnd {
            driver: VirtIONetRaw::new(transport)?,
            rx: Vec::new(),
            tx: Vec::new(),
            dropped: 0,
        };
        for _ in 0..NET_RX {
            let mut buf = Box::new([0u8; NET_BUF]);
            // SAFETY: the buffer lives in `rx` (boxed, so it does not move)
            // until the device used it and `receive_complete` took it back.
            let token = unsafe { end.driver.receive_begin(&mut buf[..]) }?;
            end.rx.push((token, buf));
        }
        Ok(end)
    }

    /// Moves frames both ways; whether any moved.
    fn pump(&mut self, tap: &tap::Tap) -> Result<bool, virtio_drivers::Error> {
        let mut any = false;
        // From the peer to Linux.
        while let Some(token) = self.driver.poll_receive() {
            let Some(i) = self.rx.iter().position(|(t, _)| *t == token) else {
                return Err(virtio_drivers::Error::WrongToken);
            };
            let (_, mut buf) = self.rx.swap_remove(i);
            // SAFETY: the buffer given to `receive_begin` under this token.
            let (hdr, len) = unsafe { self.driver.receive_complete(token, &mut buf[..]) }?;
            if !tap.write(&buf[hdr..hdr + len]) {
                self.dropped += 1;
            }
            any = true;
            // SAFETY: as in `start`.
            let token = unsafe { self.driver.receive_begin(&mut buf[..]) }?;
            self.rx.push((token, buf));
        }
        // Sent frames back.
        while let Some(token) = self.driver.poll_transmit() {
            let Some(i) = self.tx.iter().position(|(t, _)| *t == token) else {
                return Err(virtio_drivers::Error::WrongToken);
            };
            let (_, buf) = self.tx.swap_remove(i);
            // SAFETY: the buffer given to `transmit_begin` under this token.
            unsafe { self.driver.transmit_complete(token, &buf[..]) }?;
        }
        // From Linux to the peer, as transmit slots are free.
        while self.tx.len() < NET_TX {
            let mut buf = Box::new([0u8; NET_BUF]);
            let hdr = self.driver.fill_buffer_header(&mut buf[..])?;
            let Some(n) = tap.read(&mut buf[hdr..]) else {
                break;
            };
            if n > MAX_FRAME {
                self.dropped += 1;
                continue;
            }
            // SAFETY: the buffer lives in `tx` until the device used it.
            let token = unsafe { self.driver.transmit_begin(&buf[..hdr + n]) }?;
            self.tx.push((token, buf));
            any = true;
        }
        Ok(any)
    }

    /// Whether a frame from Linux would be taken now.
    pub(crate) fn takes_frames(&self) -> bool {
        self.tx.len() < NET_TX
    }
}

/// The peer's disk, exported to Linux through NBD.
pub(crate) struct BlockEnd {
    driver: VirtIOBlk<WindowHal, Transport>,
    pub(crate) export: nbd::Export,
}

/// The driver as NBD's disk. Its calls block until the peer's device
/// answers; the session serves our own devices meanwhile.
struct Driven<'a>(&'a mut VirtIOBlk<WindowHal, Transport>);

impl nbd::Disk for Driven<'_> {
    fn sectors(&self) -> u64 {
        self.0.capacity()
    }
    fn read_only(&self) -> bool {
        self.0.readonly()
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), String> {
        let block = usize::try_from(sector).map_err(|e| e.to_string())?;
        self.0.read_blocks(block, buf).map_err(|e| e.to_string())
    }
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), String> {
        let block = usize::try_from(sector).map_err(|e| e.to_string())?;
        self.0.write_blocks(block, buf).map_err(|e| e.to_string())
    }
    fn flush(&mut self) -> Result<(), String> {
        self.0.flush().map_err(|e| e.to_string())
    }
}

impl BlockEnd {
    fn start(transport: Transport, at: &std::path::Path) -> Result<Self, String> {
        let driver = VirtIOBlk::new(transport).map_err(|e| format!("{e:?}"))?;
        let export = nbd::Export::open(at, driver.capacity(), driver.readonly())
            .map_err(|e| format!("NBD: {e}"))?;
        Ok(BlockEnd { driver, export })
    }

    fn pump(&mut self) -> Result<bool, String> {
        self.export
            .serve(&mut Driven(&mut self.driver))
            .map_err(|e| format!("NBD: {e}"))
    }
}

/// This side's drivers on one link, started once the peer's bus is
/// announced and dropped when the link resets.
pub(crate) struct Drivers {
    session: &'static std::cell::RefCell<LinkSession>,
    pool: Option<PoolId>,
    devices: Devices,
    pub(crate) console: Option<ConsoleEnd>,
    pub(crate) net: Option<NetEnd>,
    pub(crate) blk: Option<BlockEnd>,
    /// Where the peer's disk appears (`/dev/avps/<link>/block`).
    blk_at: std::path::PathBuf,
    retry_at: Option<Instant>,
}

impl Drivers {
    pub(crate) fn new(
        session: &'static std::cell::RefCell<LinkSession>,
        pool: Option<PoolId>,
        blk_at: std::path::PathBuf,
    ) -> Self {
        let devices = session.borrow().devices();
        Drivers {
            session,
            pool,
            devices,
            console: None,
            net: None,
            blk: None,
            blk_at,
            retry_at: None,
        }
    }

    fn uses(&self, kind: Kind) -> bool {
        self.devices.has(kind, DeviceEnd::Uses)
    }

    /// Whether every driver this side needs runs.
    fn complete(&self) -> bool {
        (!self.uses(Kind::Console) || self.console.is_some())
            && (!self.uses(Kind::Net) || self.net.is_some())
            && (!self.uses(Kind::Block) || self.blk.is_some())
    }

    /// Starts the drivers that do not run yet, if the peer's bus is there
    /// (and the last try is long enough ago). What failed is returned, to
    /// be logged.
    pub(crate) fn start(&mut self) -> Vec<String> {
        let mut failed = Vec::new();
        if self.complete() || !self.session.borrow().peer_bus() {
            return failed;
        }
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return failed;
        }
        let Some(pool) = self.pool else {
            failed.push("no room in the window for the drivers' queues".into());
            self.retry_at = Some(Instant::now() + Duration::from_secs(3600));
            return failed;
        };
        WindowHal::select(pool);
        if self.uses(Kind::Console) && self.console.is_none() {
            // Kicks wait: `send_bytes` is a blocking call.
            match transport(self.session, Kind::Console, true)
                .map_err(|e| format!("{e:?}"))
                .and_then(|t| VirtIOConsole::new(t).map_err(|e| format!("{e:?}")))
            {
                Ok(driver) => {
                    self.console = Some(ConsoleEnd {
                        driver,
                        line: Vec::new(),
                    })
                }
                Err(e) => failed.push(format!("console driver: {e}")),
            }
        }
        if self.uses(Kind::Net) && self.net.is_none() {
            match transport(self.session, Kind::Net, false)
                .map_err(|e| format!("{e:?}"))
                .and_then(|t| NetEnd::start(t).map_err(|e| format!("{e:?}")))
            {
                Ok(end) => self.net = Some(end),
                Err(e) => failed.push(format!("network driver: {e}")),
            }
        }
        if self.uses(Kind::Block) && self.blk.is_none() {
            // Blocking calls: kicks wait.
            match transport(self.session, Kind::Block, true)
                .map_err(|e| format!("{e:?}"))
                .and_then(|t| BlockEnd::start(t, &self.blk_at))
            {
                Ok(end) => self.blk = Some(end),
                Err(e) => failed.push(format!("block driver: {e}")),
            }
        }
        if !failed.is_empty() {
            self.retry_at = Some(Instant::now() + RETRY);
        }
        failed
    }

    /// The link was reset: the peer's devices forgot our queues, so the
    /// drivers go, and their pages with them.
    pub(crate) fn stop(&mut self) {
        self.console = None;
        self.net = None;
        self.blk = None;
        self.retry_at = None;
        if let Some(pool) = self.pool {
            WindowHal::clear_pool(pool);
        }
    }

    /// Moves bytes and frames between the drivers and Linux; whether any
    /// moved. If a driver fails, the link's drivers are dropped (and
    /// started again later).
    pub(crate) fn pump(
        &mut self,
        pty: Option<&mut pty::Pty>,
        tap: Option<&tap::Tap>,
    ) -> (bool, Vec<String>) {
        let mut any = false;
        let mut failed = Vec::new();
        if let Some(pool) = self.pool {
            WindowHal::select(pool);
        }
        if let (Some(c), Some(pty)) = (&mut self.console, pty) {
            match c.pump(pty) {
                Ok(a) => any |= a,
                Err(e) => failed.push(format!("console driver: {e:?}")),
            }
        }
        if let (Some(n), Some(tap)) = (&mut self.net, tap) {
            match n.pump(tap) {
                Ok(a) => any |= a,
                Err(e) => failed.push(format!("network driver: {e:?}")),
            }
        }
        if let Some(b) = &mut self.blk {
            match b.pump() {
                Ok(a) => any |= a,
                Err(e) => failed.push(format!("block driver: {e}")),
            }
        }
        if !failed.is_empty() {
            // Their buffers share the pool: all start again, from a clean one.
            self.stop();
            self.retry_at = Some(Instant::now() + RETRY);
        }
        (any, failed)
    }
}
