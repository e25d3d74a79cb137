//! A chain's buffers read and written as one stream each: the readable part
//! from its start, the writable part from its start, in whatever pieces the
//! driver split them into. Every access goes through the window, checked.

use shmem::virtqueue::Buffer;
use shmem::{Chain, Window, WindowError};

/// Cursors over one chain's readable and writable parts.
#[derive(Debug)]
pub struct ChainIo<'c, 'w> {
    window: &'c Window<'w>,
    buffers: &'c [Buffer],
    /// Readable bytes consumed, writable bytes produced.
    read: usize,
    written: usize,
}

impl<'c, 'w> ChainIo<'c, 'w> {
    /// Cursors at the start of `chain`'s two parts.
    pub fn new<const M: usize>(window: &'c Window<'w>, chain: &'c Chain<M>) -> Self {
        Self {
            window,
            buffers: chain.buffers(),
            read: 0,
            written: 0,
        }
    }

    fn part(&self, writable: bool) -> impl Iterator<Item = &'c Buffer> + 'c {
        self.buffers
            .iter()
            .filter(move |b| b.device_writable == writable)
    }

    /// Readable bytes left.
    pub fn readable_left(&self) -> usize {
        self.part(false).map(|b| b.len as usize).sum::<usize>() - self.read
    }

    /// Writable bytes left.
    pub fn writable_left(&self) -> usize {
        self.part(true).map(|b| b.len as usize).sum::<usize>() - self.written
    }

    /// Bytes written so far (the used length to report).
    pub fn written(&self) -> usize {
        self.written
    }

    /// Copies the next `out.len()` readable bytes; `false` (nothing
    /// consumed) if fewer are left.
    pub fn read(&mut self, out: &mut [u8]) -> Result<bool, WindowError> {
        if out.len() > self.readable_left() {
            return Ok(false);
        }
        let (mut skip, mut done) = (self.read, 0);
        for b in self.part(false) {
            let len = b.len as usize;
            if skip >= len {
                skip -= len;
                continue;
            }
            let n = (len - skip).min(out.len() - done);
            self.window.invalidate(b.offset + skip, n);
            self.window
                .read_bytes(b.offset + skip, &mut out[done..done + n])?;
            done += n;
            skip = 0;
            if done == out.len() {
                break;
            }
        }
        self.read += done;
        Ok(true)
    }

    /// Writes `bytes` as the next writable bytes; `false` (nothing written)
    /// if fewer are left.
    pub fn write(&mut self, bytes: &[u8]) -> Result<bool, WindowError> {
        if bytes.len() > self.writable_left() {
            return Ok(false);
        }
        let (mut skip, mut done) = (self.written, 0);
        for b in self.part(true) {
            let len = b.len as usize;
            if skip >= len {
                skip -= len;
                continue;
            }
            let n = (len - skip).min(bytes.len() - done);
            self.window
                .write_bytes(b.offset + skip, &bytes[done..done + n])?;
            self.window.clean(b.offset + skip, n);
            done += n;
            skip = 0;
            if done == bytes.len() {
                break;
            }
        }
        self.written += done;
        Ok(true)
    }
}
