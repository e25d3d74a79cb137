//! [`Span`]: a checked byte range of a window, what a lent message buffer
//! holds, and [`Words`], its payload read word by word in place.

use super::{Access, Memory, Window, WindowError};
use core::fmt;

/// A checked byte range of a window, for copying bytes in and out: what a
/// lent message buffer holds. Checked once when made; each copy then checks
/// only against the span's own length. 16 bytes (a pointer and a length), so
/// the guards holding one move around cheaply; it has no cache hook: the user
/// of the span does the range's cache maintenance through the window.
#[derive(Clone, Copy)]
pub struct Span<'a> {
    /// The span's first byte (Window's contract: valid for `'a`).
    mem: Memory<'a>,
    len: usize,
}

impl fmt::Debug for Span<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Span").field("len", &self.len).finish()
    }
}

impl<'a> Window<'a> {
    /// `len` bytes at `offset` as a [`Span`] (any alignment).
    pub fn span(&self, offset: usize, len: usize) -> Result<Span<'a>, WindowError> {
        self.check(offset, len, 1)?;
        Ok(Span {
            // SAFETY: `check` proved `offset + len <= self.len`, so the start
            // stays inside (or one past the end of) the region.
            mem: unsafe { self.mem.advance(offset) },
            len,
        })
    }

    /// The offset in this window of a span made from it (by [`Window::span`]
    /// on this window or a copy of it). For a span of another window the
    /// result is meaningless, but every use of it is still bounds-checked.
    pub fn span_offset(&self, span: &Span<'_>) -> usize {
        span.mem.addr().wrapping_sub(self.mem.addr())
    }
}

/// The words of a span, loaded as iterated (see [`Span::words`]).
#[derive(Clone, Debug)]
pub struct Words<'a> {
    span: Span<'a>,
    at: usize,
}

impl Iterator for Words<'_> {
    type Item = u64;

    #[inline]
    fn next(&mut self) -> Option<u64> {
        if self.at > self.span.len || self.span.len - self.at < 8 {
            return None;
        }
        let word = self.span.load_word(self.at);
        self.at += 8;
        Some(word)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.span.len.saturating_sub(self.at) / 8;
        (n, Some(n))
    }

    /// Aligned words in one tight loop (alignment and length checked once),
    /// else word by word.
    #[inline]
    fn fold<B, F: FnMut(B, u64) -> B>(self, init: B, mut f: F) -> B {
        let n = self.span.len.saturating_sub(self.at) / 8;
        if n == 0 {
            return init;
        }
        if !self.span.is_word_aligned(self.at) {
            let mut acc = init;
            for word in self {
                acc = f(acc, word);
            }
            return acc;
        }
        let (mem, at) = (self.span.mem, self.at);
        // Called only with `k < n` (both loops below).
        let load = |k: usize| {
            debug_assert!(k < n);
            // SAFETY: word `k < n` lies inside the span (`at + 8 * n <= len`,
            // `n` being the whole words left), which lies inside the region
            // (checked when made); aligned (tested above).
            unsafe { mem.load_word(at + 8 * k) }
        };
        let mut acc = init;
        let mut k = 0;
        // Four words per turn: the loop's own count and branch are paid once
        // for four loads.
        while k + 4 <= n {
            let (a, b, c, d) = (load(k), load(k + 1), load(k + 2), load(k + 3));
            acc = f(acc, a);
            acc = f(acc, b);
            acc = f(acc, c);
            acc = f(acc, d);
            k += 4;
        }
        while k < n {
            acc = f(acc, load(k));
            k += 1;
        }
        acc
    }
}

impl<'a> Span<'a> {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `len` bytes at `at` (relative to this span) as a span of their own.
    #[inline]
    pub fn sub(&self, at: usize, len: usize) -> Result<Span<'a>, WindowError> {
        self.check(at, len)?;
        Ok(Span {
            // SAFETY: `at + len <= self.len` (checked), and this span lies
            // inside the region.
            mem: unsafe { self.mem.advance(at) },
            len,
        })
    }

    /// Whether the span is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check(&self, at: usize, len: usize) -> Result<(), WindowError> {
        match at.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(WindowError::OutOfBounds { offset: at, len }),
        }
    }

    /// Whether a word at `at` is 8-byte aligned in memory.
    #[inline(always)]
    fn is_word_aligned(&self, at: usize) -> bool {
        self.mem.addr().wrapping_add(at).is_multiple_of(8)
    }

    /// Stores `words` as consecutive little-endian `u64`s from `at`, each
    /// with one volatile store (eight byte stores where the address is not
    /// 8-byte aligned), for as many as fit in the span; returns the bytes
    /// written. For producing data in place, with no staging copy.
    #[inline]
    pub fn write_words(
        &self,
        at: usize,
        words: impl IntoIterator<Item = u64>,
    ) -> Result<usize, WindowError> {
        self.check(at, 0)?;
        let n = (self.len - at) / 8;
        let mut k = 0;
        if self.is_word_aligned(at) {
            for word in words.into_iter().take(n) {
                // SAFETY: word `k < n` lies inside the span, which lies inside
                // the region (checked when made); aligned (tested).
                unsafe { self.mem.store_word(at + 8 * k, word) };
                k += 1;
            }
        } else {
            for word in words.into_iter().take(n) {
                self.store_word(at + 8 * k, word);
                k += 1;
            }
        }
        Ok(8 * k)
    }

    /// Stores `count` little-endian `u64`s from `at`, word `k` being
    /// `word(k)`, as many as fit in the span; returns the bytes written. As
    /// [`Span::write_words`], for a producer that makes each word from its
    /// index: with no iterator to ask whether a word follows, the aligned
    /// loop stores four words per turn.
    #[inline]
    pub fn write_words_with(
        &self,
        at: usize,
        count: usize,
        mut word: impl FnMut(usize) -> u64,
    ) -> Result<usize, WindowError> {
        self.check(at, 0)?;
        let n = count.min((self.len - at) / 8);
        if !self.is_word_aligned(at) {
            for k in 0..n {
                self.store_word(at + 8 * k, word(k));
            }
            return Ok(8 * n);
        }
        let mem = self.mem;
        // Called only with `k < n` (both loops below).
        let store = |k: usize, w: u64| {
            debug_assert!(k < n);
            // SAFETY: word `k < n` lies inside the span, which lies inside
            // the region (checked when made); aligned (tested).
            unsafe { mem.store_word(at + 8 * k, w) };
        };
        let mut k = 0;
        while k + 4 <= n {
            store(k, word(k));
            store(k + 1, word(k + 1));
            store(k + 2, word(k + 2));
            store(k + 3, word(k + 3));
            k += 4;
        }
        while k < n {
            store(k, word(k));
            k += 1;
        }
        Ok(8 * n)
    }

    /// The little-endian `u64`s from `at` up to the span's last whole word
    /// (none when `at` is past it), each loaded once (volatile) when the
    /// iterator reaches it: for using data in place, with no staging copy.
    pub fn words(&self, at: usize) -> Words<'a> {
        Words { span: *self, at }
    }

    /// One word at `at` (`at + 8 <= len`, checked by the caller).
    #[inline(always)]
    fn store_word(&self, at: usize, word: u64) {
        // SAFETY: `at + 8 <= self.len` (caller), and the span lies inside the
        // region (checked when made). The word store is aligned (tested).
        unsafe {
            if self.is_word_aligned(at) {
                self.mem.store_word(at, word);
            } else {
                self.mem.copy_in(at, &word.to_le_bytes());
            }
        }
    }

    /// One word at `at` (`at + 8 <= len`, checked by the caller).
    #[inline(always)]
    fn load_word(&self, at: usize) -> u64 {
        // SAFETY: as in `store_word`.
        unsafe {
            if self.is_word_aligned(at) {
                self.mem.load_word(at)
            } else {
                let mut b = [0u8; 8];
                self.mem.copy_out(at, &mut b);
                u64::from_le_bytes(b)
            }
        }
    }

    /// Copy `dst.len()` bytes at `at` (relative to the span) out.
    #[inline]
    pub fn read_bytes(&self, at: usize, dst: &mut [u8]) -> Result<(), WindowError> {
        self.check(at, dst.len())?;
        // SAFETY: `at .. at + dst.len()` is inside the span (checked), which
        // `Window::span` checked is inside the region.
        unsafe { self.mem.copy_out(at, dst) };
        Ok(())
    }

    /// Copy `src` in at `at` (relative to the span).
    #[inline]
    pub fn write_bytes(&self, at: usize, src: &[u8]) -> Result<(), WindowError> {
        self.check(at, src.len())?;
        // SAFETY: as in `read_bytes`.
        unsafe { self.mem.copy_in(at, src) };
        Ok(())
    }
}
