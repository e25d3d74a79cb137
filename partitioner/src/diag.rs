//! Diagnostics: every problem found in a manifest, with a stable code, the byte
//! span it is about, and one line saying what to do.

use alloc::string::String;
use alloc::vec::Vec;

/// A byte range in the manifest source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// A span from byte offsets.
    pub const fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
}

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where it is in the source.
    pub span: Span,
}

impl<T> Spanned<T> {
    /// Pairs a value with its span.
    pub const fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }
}

macro_rules! codes {
    ($($variant:ident = $code:literal: $summary:literal,)*) => {
        /// Stable diagnostic codes: each rule has its own, documented in
        /// `manifests/README.md`; tests and users can search for them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $(#[doc = $summary] $variant,)*
        }

        impl Code {
            /// Every code, in order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as written in diagnostics (`P0101`).
            pub const fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// What the rule checks, in a few words.
            pub const fn summary(self) -> &'static str {
                match self { $(Code::$variant => $summary,)* }
            }
        }
    };
}

codes! {
    Syntax = "P0001": "the file is not valid TOML",
    UnknownKey = "P0002": "unknown or misspelled key",
    InvalidValue = "P0003": "value of the wrong type or out of range",
    MissingKey = "P0004": "required key missing",
    UnknownBoard = "P0005": "board not supported",
    DuplicateName = "P0006": "two partitions or two links with one name",
    NoSuchCore = "P0101": "core not in the board's device tree",
    CoreTwice = "P0102": "core given twice",
    NoCores = "P0103": "partition without cores",
    BootCore = "P0104": "boot core not among the partition's cores",
    OutsideDram = "P0201": "memory outside DRAM",
    MemoryOverlap = "P0202": "memory overlaps another partition",
    MemoryOverlapsWindow = "P0203": "memory overlaps a link window",
    MemoryOverlapsBoot = "P0204": "memory overlaps the boot stage's region",
    Misaligned = "P0205": "memory misaligned for its use",
    EmptyRange = "P0206": "memory range of size zero",
    NoSuchDevice = "P0301": "device path or label not in the device tree",
    DeviceTwice = "P0302": "device owned twice",
    InterruptShared = "P0303": "interrupt line claimed by two partitions",
    ProviderUnreachable = "P0304": "device's interrupt controller or clock owned by another partition",
    LinkUnknownPartition = "P0401": "link names an unknown partition",
    LinkToItself = "P0402": "link between a partition and itself",
    WindowTooSmall = "P0403": "link window too small for its rings and buffers",
    WindowPlacement = "P0404": "link window outside DRAM, above 4 GiB, misaligned, or over the boot stage",
    WindowOverlap = "P0405": "two link windows overlap",
    UnknownAvpsKind = "P0406": "AVPS device kind unknown or not carried over a link",
    ProviderNotOnLink = "P0407": "AVPS device provided by a partition not on the link",
    AvpsNotServed = "P0408": "AVPS device that no partition serves yet",
    AvpsKeyMisplaced = "P0409": "AVPS device key that does not apply to that device",
    BadDiskSize = "P0410": "block device size not a whole number of pages, or larger than its provider's memory",
    BadBacking = "P0411": "block device backing not an absolute path",
    AvpsDeviceTwice = "P0412": "the same AVPS device provided twice on a link",
    ImageMissing = "P0501": "image or initrd file missing",
    ImageKind = "P0502": "image is not what its kind says",
    ImageDoesNotFit = "P0503": "image does not fit the partition's memory",
    ConsoleShared = "P0601": "console device claimed by two partitions",
    ConsoleNotOwned = "P0602": "console device not among the partition's devices",
    NoSpace = "P0701": "no free memory left to place a link window",
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Rule.
    pub code: Code,
    /// What is wrong.
    pub message: String,
    /// Where.
    pub span: Span,
    /// What to do, in one line.
    pub help: String,
    /// Related places: `(span, what is there)`.
    pub notes: Vec<(Span, String)>,
}

impl Diagnostic {
    /// A diagnostic without notes.
    pub fn new(
        code: Code,
        span: Span,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            span,
            help: help.into(),
            notes: Vec::new(),
        }
    }

    /// Adds a related place.
    pub fn note(mut self, span: Span, text: impl Into<String>) -> Self {
        self.notes.push((span, text.into()));
        self
    }
}

/// Line and column (both from 1, column in characters) of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// The closest candidate to `word` by edit distance, if close enough to be a
/// likely typo.
pub fn suggest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_well_formed() {
        for (i, a) in Code::ALL.iter().enumerate() {
            assert!(a.as_str().len() == 5 && a.as_str().starts_with('P'));
            for b in &Code::ALL[i + 1..] {
                assert_ne!(a.as_str(), b.as_str());
            }
        }
    }

    #[test]
    fn suggestions_catch_typos_only() {
        assert_eq!(
            suggest("corse", ["cores", "console", "memory"]),
            Some("cores")
        );
        assert_eq!(
            suggest("bootargz", ["bootargs", "initrd"]),
            Some("bootargs")
        );
        assert_eq!(suggest("zzzz", ["cores", "memory"]), None);
    }

    #[test]
    fn line_and_column_count_characters() {
        let src = "a = 1\nbé = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        assert_eq!(line_col(src, src.find('=').unwrap()), (1, 3));
        assert_eq!(line_col(src, src.rfind('=').unwrap()), (2, 4));
    }
}
