//! A block device the peer provides, as a Linux block device through the
//! kernel's own NBD client (`nbd.ko`): the bridge is the server at the other
//! end of a socket pair it hands to `/dev/nbdN`, so no NBD tool is needed.
//!
//! The transmission phase only (the kernel is configured by ioctls, there
//! is no negotiation): requests of 28 bytes (magic, flags and type, handle,
//! offset, length, all big-endian), each answered by a 16-byte simple reply
//! (magic, error, handle), a read's data after it.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// `ioctl`s of `/dev/nbdN` (linux/nbd.h: `_IO(0xab, n)`).
mod ioctl {
    pub(super) const SET_SOCK: libc::c_ulong = 0xab00;
    pub(super) const SET_BLKSIZE: libc::c_ulong = 0xab01;
    pub(super) const DO_IT: libc::c_ulong = 0xab03;
    pub(super) const CLEAR_SOCK: libc::c_ulong = 0xab04;
    pub(super) const SET_SIZE_BLOCKS: libc::c_ulong = 0xab07;
    pub(super) const DISCONNECT: libc::c_ulong = 0xab08;
    pub(super) const SET_TIMEOUT: libc::c_ulong = 0xab09;
    pub(super) const SET_FLAGS: libc::c_ulong = 0xab0a;
}

/// Export flags.
const FLAG_HAS_FLAGS: libc::c_ulong = 1 << 0;
const FLAG_READ_ONLY: libc::c_ulong = 1 << 1;
const FLAG_SEND_FLUSH: libc::c_ulong = 1 << 2;
const FLAG_SEND_WRITE_ZEROES: libc::c_ulong = 1 << 6;

const REQUEST_MAGIC: u32 = 0x2560_9513;
const REPLY_MAGIC: u32 = 0x6744_6698;
const REQUEST_LEN: usize = 28;

/// Errors a reply carries (errno values, as the protocol says).
const EIO: u32 = 5;
const EINVAL: u32 = 22;
const EPERM: u32 = 1;

/// One request from the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    Read {
        offset: u64,
        len: u32,
    },
    Write {
        offset: u64,
        len: u32,
    },
    Flush,
    WriteZeroes {
        offset: u64,
        len: u32,
    },
    Disconnect,
    /// A command this export does not offer (TRIM, CACHE, ...).
    Other(u16),
}

/// A request's header: the request and its handle; `None` if the magic is
/// wrong (the stream is lost).
pub(crate) fn parse(header: &[u8; REQUEST_LEN]) -> Option<(Request, [u8; 8])> {
    let be32 = |at: usize| u32::from_be_bytes(header[at..at + 4].try_into().unwrap_or([0; 4]));
    if be32(0) != REQUEST_MAGIC {
        return None;
    }
    let command = (be32(4) & 0xffff) as u16;
    let mut handle = [0u8; 8];
    handle.copy_from_slice(&header[8..16]);
    let offset = u64::from_be_bytes(header[16..24].try_into().unwrap_or([0; 8]));
    let len = be32(24);
    let request = match command {
        0 => Request::Read { offset, len },
        1 => Request::Write { offset, len },
        2 => Request::Disconnect,
        3 => Request::Flush,
        6 => Request::WriteZeroes { offset, len },
        c => Request::Other(c),
    };
    Some((request, handle))
}

/// A simple reply's header.
fn reply(handle: [u8; 8], error: u32) -> [u8; 16] {
    let mut r = [0u8; 16];
    r[..4].copy_from_slice(&REPLY_MAGIC.to_be_bytes());
    r[4..8].copy_from_slice(&error.to_be_bytes());
    r[8..].copy_from_slice(&handle);
    r
}

/// What serves the requests: a disk of whole 512-byte sectors.
pub(crate) trait Disk {
    /// Sectors on the disk.
    fn sectors(&self) -> u64;
    /// Whether writes are refused.
    fn read_only(&self) -> bool;
    /// Reads whole sectors from `sector` into `buf`.
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), String>;
    /// Writes whole sectors at `sector`.
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), String>;
    /// Makes every acknowledged write durable.
    fn flush(&mut self) -> Result<(), String>;
}

/// The largest piece a request is cut into on its way to the disk.
const PIECE: usize = 64 << 10;
const SECTOR: u64 = 512;

/// An exported disk: `/dev/nbdN`, its stable name, our end of the socket.
pub(crate) struct Export {
    pub(crate) device: PathBuf,
    link: PathBuf,
    sock: UnixStream,
    ctl: OwnedFd,
    thread: Option<std::thread::JoinHandle<()>>,
    /// A request header read in part.
    header: Vec<u8>,
    /// Requests served.
    pub(crate) served: u64,
}

fn nbd_ioctl(
    fd: &OwnedFd,
    request: libc::c_ulong,
    arg: libc::c_ulong,
    what: &str,
) -> io::Result<()> {
    // SAFETY: an ioctl of the NBD driver on our own descriptor whose
    // argument is a plain integer.
    if unsafe { libc::ioctl(fd.as_raw_fd(), request, arg) } < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

impl Export {
    /// Hands a disk of `sectors` sectors to the first free `/dev/nbdN` and
    /// links `at` to it.
    pub(crate) fn open(at: &Path, sectors: u64, read_only: bool) -> io::Result<Self> {
        let (device, ctl) = free_device()?;
        let (ours, theirs) = UnixStream::pair()?;
        let fail = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", device.display()));
        nbd_ioctl(
            &ctl,
            ioctl::SET_BLKSIZE,
            SECTOR as libc::c_ulong,
            "block size",
        )
        .map_err(fail)?;
        nbd_ioctl(
            &ctl,
            ioctl::SET_SIZE_BLOCKS,
            sectors as libc::c_ulong,
            "size",
        )
        .map_err(fail)?;
        let mut flags = FLAG_HAS_FLAGS | FLAG_SEND_FLUSH | FLAG_SEND_WRITE_ZEROES;
        if read_only {
            flags |= FLAG_READ_ONLY;
        }
        nbd_ioctl(&ctl, ioctl::SET_FLAGS, flags, "flags").map_err(fail)?;
        // No timeout: a request waits for the peer as long as it takes
        // (the peer may be restarting its device).
        nbd_ioctl(&ctl, ioctl::SET_TIMEOUT, 0, "timeout").map_err(fail)?;
        nbd_ioctl(
            &ctl,
            ioctl::SET_SOCK,
            theirs.as_raw_fd() as libc::c_ulong,
            "socket",
        )
        .map_err(fail)?;
        // The kernel holds its own reference to the socket now.
        drop(theirs);
        // SAFETY: duplicating our own open descriptor.
        let dup = unsafe { libc::dup(ctl.as_raw_fd()) };
        if dup < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `dup` is a fresh descriptor we own.
        let runner = unsafe { OwnedFd::from_raw_fd(dup) };
        // NBD_DO_IT runs the device until it is disconnected.
        let thread = std::thread::Builder::new()
            .name(format!("nbd {}", device.display()))
            .spawn(move || {
                let _ = nbd_ioctl(&runner, ioctl::DO_IT, 0, "run");
                let _ = nbd_ioctl(&runner, ioctl::CLEAR_SOCK, 0, "clear");
            })?;
        sock_nonblocking(&ours)?;
        if let Some(dir) = at.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let _ = std::fs::remove_file(at);
        std::os::unix::fs::symlink(&device, at)?;
        Ok(Export {
            device,
            link: at.to_path_buf(),
            sock: ours,
            ctl,
            thread: Some(thread),
            header: Vec::with_capacity(REQUEST_LEN),
            served: 0,
        })
    }

    /// The socket, for `poll`.
    pub(crate) fn fd(&self) -> libc::c_int {
        self.sock.as_raw_fd()
    }

    /// Serves the requests waiting on the socket with `disk`; whether any
    /// came. An error is the stream's: the export is unusable after it.
    pub(crate) fn serve(&mut self, disk: &mut dyn Disk) -> io::Result<bool> {
        let mut any = false;
        loop {
            let mut byte_buf = [0u8; REQUEST_LEN];
            let want = REQUEST_LEN - self.header.len();
            match self.sock.read(&mut byte_buf[..want]) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed")),
                Ok(n) => self.header.extend_from_slice(&byte_buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(any),
                Err(e) => return Err(e),
            }
            if self.header.len() < REQUEST_LEN {
                continue;
            }
            let mut header = [0u8; REQUEST_LEN];
            header.copy_from_slice(&self.header);
            self.header.clear();
            let (request, handle) = parse(&header)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad request magic"))?;
            any = true;
            self.served += 1;
            self.answer(request, handle, disk)?;
        }
    }

    fn answer(&mut self, request: Request, handle: [u8; 8], disk: &mut dyn Disk) -> io::Result<()> {
        let range = |offset: u64, len: u32| -> Option<(u64, u64)> {
            let end = offset.checked_add(u64::from(len))?;
            (offset.is_multiple_of(SECTOR)
                && u64::from(len).is_multiple_of(SECTOR)
                && end <= disk.sectors() * SECTOR)
                .then_some((offset / SECTOR, u64::from(len) / SECTOR))
        };
        match request {
            Request::Read { offset, len } => {
                let Some((sector, _)) = range(offset, len) else {
                    return self.send(&reply(handle, EINVAL), &[]);
                };
                let mut data = vec![0u8; len as usize];
                let mut ok = true;
                for (i, piece) in data.chunks_mut(PIECE).enumerate() {
                    let at = sector + (i * PIECE) as u64 / SECTOR;
                    if disk.read(at, piece).is_err() {
                        ok = false;
                        break;
                    }
                }
                match ok {
                    true => self.send(&reply(handle, 0), &data),
                    false => self.send(&reply(handle, EIO), &[]),
                }
            }
            Request::Write { offset, len } => {
                // The data follows the header: always read it.
                let mut data = vec![0u8; len as usize];
                self.read_exact_blocking(&mut data)?;
                let error = match range(offset, len) {
                    None => EINVAL,
                    Some(_) if disk.read_only() => EPERM,
                    Some((sector, _)) => write_all(disk, sector, &data),
                };
                self.send(&reply(handle, error), &[])
            }
            Request::WriteZeroes { offset, len } => {
                let error = match range(offset, len) {
                    None => EINVAL,
                    Some(_) if disk.read_only() => EPERM,
                    Some((sector, count)) => {
                        // virtio-drivers' block driver has no write-zeroes
                        // request: zero sectors are written instead.
                        let zero = vec![0u8; PIECE];
                        let mut error = 0;
                        let mut done = 0u64;
                        while done < count && error == 0 {
                            let n = (count - done).min(PIECE as u64 / SECTOR);
                            error = write_all(disk, sector + done, &zero[..(n * SECTOR) as usize]);
                            done += n;
                        }
                        error
                    }
                };
                self.send(&reply(handle, error), &[])
            }
            Request::Flush => {
                let error = if disk.flush().is_ok() { 0 } else { EIO };
                self.send(&reply(handle, error), &[])
            }
            // The kernel closes the socket after it.
            Request::Disconnect => Ok(()),
            Request::Other(_) => self.send(&reply(handle, EINVAL), &[]),
        }
    }

    fn send(&mut self, header: &[u8], data: &[u8]) -> io::Result<()> {
        for part in [header, data] {
            let mut at = 0;
            while at < part.len() {
                match self.sock.write(&part[at..]) {
                    Ok(n) => at += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        wait_fd(self.fd(), libc::POLLOUT)
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    fn read_exact_blocking(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut at = 0;
        while at < buf.len() {
            match self.sock.read(&mut buf[at..]) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed")),
                Ok(n) => at += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_fd(self.fd(), libc::POLLIN),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn write_all(disk: &mut dyn Disk, sector: u64, data: &[u8]) -> u32 {
    for (i, piece) in data.chunks(PIECE).enumerate() {
        if disk
            .write(sector + (i * PIECE) as u64 / SECTOR, piece)
            .is_err()
        {
            return EIO;
        }
    }
    0
}

impl Drop for Export {
    fn drop(&mut self) {
        // Only our own link (see `Pty`'s drop).
        if std::fs::read_link(&self.link).is_ok_and(|t| t == self.device) {
            let _ = std::fs::remove_file(&self.link);
        }
        let _ = nbd_ioctl(&self.ctl, ioctl::DISCONNECT, 0, "disconnect");
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn wait_fd(fd: libc::c_int, events: libc::c_short) {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one live pollfd.
    unsafe { libc::poll(&mut p, 1, 100) };
}

fn sock_nonblocking(s: &UnixStream) -> io::Result<()> {
    s.set_nonblocking(true)
}

/// The first `/dev/nbdN` not in use (its size is 0), opened.
fn free_device() -> io::Result<(PathBuf, OwnedFd)> {
    for n in 0..16 {
        let size = std::fs::read_to_string(format!("/sys/block/nbd{n}/size")).unwrap_or_default();
        if size.trim() != "0" {
            continue;
        }
        let path = PathBuf::from(format!("/dev/nbd{n}"));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)?;
        return Ok((path, OwnedFd::from(file)));
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        "no free /dev/nbdN (is nbd.ko loaded?)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_as_the_kernel_writes_them() {
        let mut h = [0u8; REQUEST_LEN];
        h[..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
        h[4..8].copy_from_slice(&1u32.to_be_bytes());
        h[8..16].copy_from_slice(b"handle!!");
        h[16..24].copy_from_slice(&4096u64.to_be_bytes());
        h[24..28].copy_from_slice(&512u32.to_be_bytes());
        assert_eq!(
            parse(&h),
            Some((
                Request::Write {
                    offset: 4096,
                    len: 512
                },
                *b"handle!!"
            ))
        );
        // FUA and other command flags sit in the upper half of the type.
        h[4..8].copy_from_slice(&0x0001_0003u32.to_be_bytes());
        assert_eq!(parse(&h).map(|r| r.0), Some(Request::Flush));
        h[0] = 0;
        assert_eq!(parse(&h), None, "a lost stream");
        assert_eq!(reply(*b"handle!!", 0)[..4], REPLY_MAGIC.to_be_bytes());
    }
}
