//! Reads a manifest from TOML, keeping every value's span, and reports every
//! problem of form (syntax, unknown or misspelled keys, wrong types, missing
//! keys) in one pass, as cargo-deny does: rules about meaning come after, in
//! [`crate::rules`].

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use toml_span::value::{Table, Value, ValueInner};

use crate::diag::{suggest, Code, Diagnostic, Span, Spanned};
use crate::manifest::{
    parse_size, AvpsDevice, DoorbellKind, Image, ImageKind, Manifest, ManifestLink, MemoryRange,
    Partition,
};

const ROOT_KEYS: &[&str] = &["board", "partition", "link"];
const PARTITION_KEYS: &[&str] = &[
    "name",
    "cores",
    "boot-core",
    "memory",
    "devices",
    "console",
    "image",
    "entry-el",
    "system-control",
];
const MEMORY_KEYS: &[&str] = &["base", "size"];
const IMAGE_KEYS: &[&str] = &["kind", "path", "initrd", "bootargs", "load-address"];
const LINK_KEYS: &[&str] = &["name", "between", "shmem", "doorbell", "devices"];
const SHMEM_KEYS: &[&str] = &["base", "size"];
const AVPS_KEYS: &[&str] = &["kind", "provider", "size", "backing"];

/// Parses manifest text. Returns the model when the text has the right form
/// (possibly with diagnostics about keys), and every diagnostic found.
pub fn parse(source: &str) -> (Option<Manifest>, Vec<Diagnostic>) {
    let mut r = Reader { diags: Vec::new() };
    let root = match toml_span::parse(source) {
        Ok(v) => v,
        Err(e) => {
            let span = Span::new(e.span.start, e.span.end.max(e.span.start));
            let d = Diagnostic::new(
                Code::Syntax,
                span,
                format!("not valid TOML: {}", syntax_message(&e)),
                "fix the syntax at the marked place",
            );
            return (None, alloc::vec![d]);
        }
    };
    let manifest = r.manifest(&root);
    (
        manifest.filter(|_| r.diags.iter().all(|d| d.code == Code::UnknownKey)),
        r.diags,
    )
}

fn syntax_message(e: &toml_span::Error) -> String {
    e.to_string()
}

fn span(v: &Value<'_>) -> Span {
    Span::new(v.span.start, v.span.end)
}

struct Reader {
    diags: Vec<Diagnostic>,
}

/// The keys of one table, checked against the keys it may have.
struct Fields<'t, 'de> {
    table: &'t Table<'de>,
    span: Span,
    what: &'static str,
}

impl Reader {
    fn err(&mut self, code: Code, span: Span, message: String, help: impl Into<String>) {
        self.diags.push(Diagnostic::new(code, span, message, help));
    }

    fn fields<'t, 'de>(
        &mut self,
        v: &'t Value<'de>,
        what: &'static str,
        known: &[&str],
    ) -> Option<Fields<'t, 'de>> {
        let Some(table) = v.as_table() else {
            self.type_error(v, what, "a table");
            return None;
        };
        for key in table.keys() {
            if !known.contains(&key.name.as_ref()) {
                let help = match suggest(&key.name, known.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("known keys here: {}", known.join(", ")),
                };
                self.err(
                    Code::UnknownKey,
                    Span::new(key.span.start, key.span.end),
                    format!("unknown key `{}` in {what}", key.name),
                    help,
                );
            }
        }
        Some(Fields {
            table,
            span: span(v),
            what,
        })
    }

    fn type_error(&mut self, v: &Value<'_>, what: &str, expected: &str) {
        let found = AsRef::<ValueInner<'_>>::as_ref(v).type_str();
        self.err(
            Code::InvalidValue,
            span(v),
            format!("{what} must be {expected}, found {found}"),
            format!("write {what} as {expected}"),
        );
    }

    fn required<'t, 'de>(
        &mut self,
        f: &Fields<'t, 'de>,
        key: &str,
        example: &str,
    ) -> Option<&'t Value<'de>> {
        let v = f.table.get(key);
        if v.is_none() {
            self.err(
                Code::MissingKey,
                f.span,
                format!("{} has no `{key}`", f.what),
                format!("add `{key} = {example}`"),
            );
        }
        v
    }

    fn string(&mut self, v: &Value<'_>, what: &str) -> Option<Spanned<String>> {
        match v.as_str() {
            Some(s) => Some(Spanned::new(s.to_string(), span(v))),
            None => {
                self.type_error(v, what, "a string");
                None
            }
        }
    }

    fn integer(&mut self, v: &Value<'_>, what: &str, max: u64) -> Option<Spanned<u64>> {
        match v.as_integer() {
            Some(i) if i >= 0 && (i as u64) <= max => Some(Spanned::new(i as u64, span(v))),
            Some(i) => {
                self.err(
                    Code::InvalidValue,
                    span(v),
                    format!("{what} is {i}, out of range"),
                    format!("use a value from 0 to {max}"),
                );
                None
            }
            None => {
                self.type_error(v, what, "an integer");
                None
            }
        }
    }

    /// An integer or a size string such as `"512M"`.
    fn size(&mut self, v: &Value<'_>, what: &str) -> Option<Spanned<u64>> {
        if let Some(s) = v.as_str() {
            return match parse_size(s) {
                Some(n) => Some(Spanned::new(n, span(v))),
                None => {
                    self.err(
                        Code::InvalidValue,
                        span(v),
                        format!("{what} `{s}` is not a size"),
                        "write a size as bytes (0x1000, 4096) or with K, M or G (\"64K\", \"512M\")",
                    );
                    None
                }
            };
        }
        self.integer(v, what, u64::MAX)
    }

    fn array<'t, 'de>(&mut self, v: &'t Value<'de>, what: &str) -> Option<&'t [Value<'de>]> {
        match v.as_array() {
            Some(a) => Some(a.as_slice()),
            None => {
                self.type_error(v, what, "an array");
                None
            }
        }
    }

    fn choice<T: Copy>(
        &mut self,
        v: &Value<'_>,
        what: &str,
        options: &[(&'static str, T)],
    ) -> Option<Spanned<T>> {
        let s = self.string(v, what)?;
        if let Some((_, t)) = options.iter().find(|(name, _)| *name == s.value) {
            return Some(Spanned::new(*t, s.span));
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let help = match suggest(&s.value, names.iter().copied()) {
            Some(m) => format!("did you mean \"{m}\"?"),
            None => format!("use one of: {}", names.join(", ")),
        };
        self.err(
            Code::InvalidValue,
            s.span,
            format!("{what} \"{}\" is not known", s.value),
            help,
        );
        None
    }

    fn manifest(&mut self, root: &Value<'_>) -> Option<Manifest> {
        let f = self.fields(root, "the manifest", ROOT_KEYS)?;
        let board = self
            .required(&f, "board", "\"qemu-virt\"")
            .and_then(|v| self.string(v, "`board`"));
        let mut partitions = Vec::new();
        if let Some(v) = self.required(&f, "partition", "[[partition]] tables") {
            for p in self.array(v, "`partition`").unwrap_or(&[]) {
                partitions.extend(self.partition(p));
            }
        }
        let mut links = Vec::new();
        if let Some(v) = f.table.get("link") {
            for l in self.array(v, "`link`").unwrap_or(&[]) {
                links.extend(self.link(l));
            }
        }
        Some(Manifest {
            board: board?,
            partitions,
            links,
        })
    }

    fn partition(&mut self, v: &Value<'_>) -> Option<Partition> {
        let f = self.fields(v, "a partition", PARTITION_KEYS)?;
        let name = self
            .required(&f, "name", "\"linux\"")
            .and_then(|v| self.name(v, "partition name"));
        let cores = self.required(&f, "cores", "[0, 1]").and_then(|v| {
            let items = self.array(v, "`cores`")?;
            let cores = items
                .iter()
                .filter_map(|c| self.integer(c, "a core", u64::from(u32::MAX)));
            Some(Spanned::new(
                cores
                    .map(|c| Spanned::new(c.value as u32, c.span))
                    .collect(),
                span(v),
            ))
        });
        let boot_core = f
            .table
            .get("boot-core")
            .and_then(|v| self.integer(v, "`boot-core`", u64::from(u32::MAX)))
            .map(|c| Spanned::new(c.value as u32, c.span));
        let mut memory = Vec::new();
        if let Some(v) = self.required(&f, "memory", "[{ base = 0x4000_0000, size = \"512M\" }]") {
            for m in self.array(v, "`memory`").unwrap_or(&[]) {
                memory.extend(self.memory(m));
            }
        }
        let devices = match f.table.get("devices") {
            Some(v) => {
                let items = self.array(v, "`devices`").unwrap_or(&[]);
                items
                    .iter()
                    .filter_map(|d| self.string(d, "a device"))
                    .collect()
            }
            None => Vec::new(),
        };
        let console = f
            .table
            .get("console")
            .and_then(|v| self.string(v, "`console`"));
        let image = f.table.get("image").and_then(|v| self.image(v));
        let entry_el = f.table.get("entry-el").and_then(|v| {
            let el = self.integer(v, "`entry-el`", 3)?;
            if el.value == 1 || el.value == 2 {
                Some(Spanned::new(el.value as u8, el.span))
            } else {
                self.err(
                    Code::InvalidValue,
                    el.span,
                    format!("`entry-el` is {}: an OS is entered at EL1 or EL2", el.value),
                    "use 1 (kernel) or 2 (hypervisor-capable kernel)",
                );
                None
            }
        });
        let system_control = f
            .table
            .get("system-control")
            .and_then(|v| match v.as_bool() {
                Some(b) => Some(Spanned::new(b, span(v))),
                None => {
                    self.type_error(v, "`system-control`", "true or false");
                    None
                }
            });
        Some(Partition {
            name: name?,
            span: f.span,
            cores: cores?,
            boot_core,
            memory,
            devices,
            console,
            image,
            entry_el,
            system_control,
        })
    }

    /// A partition or link name: short, lowercase, usable as a node name.
    fn name(&mut self, v: &Value<'_>, what: &str) -> Option<Spanned<String>> {
        let s = self.string(v, what)?;
        let ok = !s.value.is_empty()
            && s.value.len() <= 15
            && s.value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && s.value.starts_with(|c: char| c.is_ascii_lowercase());
        if ok {
            Some(s)
        } else {
            self.err(
                Code::InvalidValue,
                s.span,
                format!("{what} \"{}\" is not a valid name", s.value),
                "use 1 to 15 characters: lowercase letters, digits and '-', starting with a letter",
            );
            None
        }
    }

    fn memory(&mut self, v: &Value<'_>) -> Option<MemoryRange> {
        let f = self.fields(v, "a memory range", MEMORY_KEYS)?;
        let base = self
            .required(&f, "base", "0x4000_0000")
            .and_then(|v| self.integer(v, "`base`", u64::MAX));
        let size = self
            .required(&f, "size", "\"512M\"")
            .and_then(|v| self.size(v, "`size`"));
        Some(MemoryRange {
            base: base?,
            size: size?,
            span: f.span,
        })
    }

    fn image(&mut self, v: &Value<'_>) -> Option<Image> {
        let f = self.fields(v, "an image", IMAGE_KEYS)?;
        let kind = self
            .required(&f, "kind", "\"linux\"")
            .and_then(|v| self.choice(v, "image kind", ImageKind::ALL));
        let path = self
            .required(&f, "path", "\"Image\"")
            .and_then(|v| self.string(v, "`path`"));
        let initrd = f
            .table
            .get("initrd")
            .and_then(|v| self.string(v, "`initrd`"));
        let bootargs = f
            .table
            .get("bootargs")
            .and_then(|v| self.string(v, "`bootargs`"));
        let load_address = f
            .table
            .get("load-address")
            .and_then(|v| self.integer(v, "`load-address`", u64::MAX));
        let kind = kind?;
        let misplaced: Option<(&str, Span)> = match kind.value {
            ImageKind::Linux => load_address.as_ref().map(|v| ("load-address", v.span)),
            ImageKind::Elf | ImageKind::Raw => initrd
                .as_ref()
                .map(|v| ("initrd", v.span))
                .or_else(|| bootargs.as_ref().map(|v| ("bootargs", v.span))),
        };
        if let Some((key, at)) = misplaced {
            self.err(
                Code::InvalidValue,
                at,
                format!("`{key}` does not apply to a {} image", kind.value.as_str()),
                format!("remove `{key}`, or change the image kind"),
            );
        }
        if kind.value == ImageKind::Raw && load_address.is_none() {
            self.err(
                Code::MissingKey,
                f.span,
                "a raw image has no `load-address`".into(),
                "add `load-address = 0x...` inside the partition's memory",
            );
        }
        Some(Image {
            kind,
            path: path?,
            initrd,
            bootargs,
            load_address,
            span: f.span,
        })
    }

    fn link(&mut self, v: &Value<'_>) -> Option<ManifestLink> {
        let f = self.fields(v, "a link", LINK_KEYS)?;
        let name = self
            .required(&f, "name", "\"linux-rtos\"")
            .and_then(|v| self.name(v, "link name"));
        let between = self
            .required(&f, "between", "[\"linux\", \"rtos\"]")
            .and_then(|v| {
                let items = self.array(v, "`between`")?;
                let names: Vec<_> = items
                    .iter()
                    .filter_map(|n| self.string(n, "a partition name"))
                    .collect();
                if items.len() != 2 {
                    self.err(
                        Code::InvalidValue,
                        span(v),
                        format!(
                            "a link joins exactly two partitions, `between` names {}",
                            items.len()
                        ),
                        "write `between = [\"host-side\", \"remote-side\"]`",
                    );
                    return None;
                }
                (names.len() == 2).then(|| Spanned::new(names, span(v)))
            });
        let (mut size, mut base) = (None, None);
        if let Some(v) = self.required(&f, "shmem", "{ size = \"1M\" }") {
            if let Some(s) = self.fields(v, "`shmem`", SHMEM_KEYS) {
                size = self
                    .required(&s, "size", "\"1M\"")
                    .and_then(|v| self.size(v, "`size`"));
                base = s
                    .table
                    .get("base")
                    .and_then(|v| self.integer(v, "`base`", u64::MAX));
            }
        }
        let doorbell = f
            .table
            .get("doorbell")
            .and_then(|v| self.choice(v, "doorbell", DoorbellKind::ALL));
        let mut devices = Vec::new();
        if let Some(v) = f.table.get("devices") {
            for d in self.array(v, "`devices`").unwrap_or(&[]) {
                if let Some(df) = self.fields(d, "an AVPS device", AVPS_KEYS) {
                    let kind = self
                        .required(&df, "kind", "\"console\"")
                        .and_then(|v| self.string(v, "`kind`"));
                    let provider = self
                        .required(&df, "provider", "\"rtos\"")
                        .and_then(|v| self.string(v, "`provider`"));
                    let size = df.table.get("size").and_then(|v| self.size(v, "`size`"));
                    let backing = df
                        .table
                        .get("backing")
                        .and_then(|v| self.string(v, "`backing`"));
                    if let (Some(kind), Some(provider)) = (kind, provider) {
                        devices.push(AvpsDevice {
                            kind,
                            provider,
                            size,
                            backing,
                            span: df.span,
                        });
                    }
                }
            }
        }
        Some(ManifestLink {
            name: name?,
            span: f.span,
            between: between?,
            size: size?,
            base,
            doorbell,
            devices,
        })
    }
}
