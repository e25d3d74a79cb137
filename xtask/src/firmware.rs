//! Builds the bare-metal boot stage and turns its ELF into the flat image that
//! loaders take (an arm64 Image: header at offset 0, loadable anywhere).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::setup::Toolchain;

const TARGET: &str = "aarch64-unknown-none";

/// The bare-metal artifacts.
pub(crate) struct Firmware {
    /// The flat boot stage, `target/firmware/boot.bin`.
    pub(crate) boot: PathBuf,
    /// The demo RTOS partition (an ELF), `target/firmware/rtos-demo.elf`.
    pub(crate) rtos: PathBuf,
    /// The Linux-side bridge (static arm64 Linux), `target/firmware/avps-bridge`.
    pub(crate) bridge: PathBuf,
}

/// Builds the boot stage and the demo RTOS in release mode into `target/firmware/`
/// (`$CARGO_TARGET_DIR/firmware/` when that is set: cargo builds there).
pub(crate) fn build(toolchain: &Toolchain) -> Result<Firmware, String> {
    let target = crate::target_dir();
    let mut cmd = crate::cargo();
    cmd.args([
        "build",
        "--release",
        "--package",
        "boot",
        "--package",
        "rtos-demo",
        "--target",
        TARGET,
    ]);
    if let Toolchain::DebianBuildStd { rustc } = toolchain {
        // Debian ships the library source, not a prebuilt core for the target:
        // build core from it. RUSTC_BOOTSTRAP only unlocks -Zbuild-std here.
        cmd.args([
            "-Zbuild-std=core,alloc",
            "-Zbuild-std-features=compiler-builtins-mem",
        ])
        .env("RUSTC", rustc)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_AARCH64_UNKNOWN_NONE_LINKER", "ld.lld");
    }
    eprintln!(
        "build: boot stage and demo RTOS for {TARGET} ({})",
        describe(toolchain)
    );
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    // Pass cargo's messages through, and count warnings: the bare-metal build
    // must have none.
    let mut warnings = 0;
    for line in BufReader::new(child.stderr.take().expect("stderr was piped")).lines() {
        let line = line.map_err(|e| e.to_string())?;
        if line.starts_with("warning") {
            warnings += 1;
        }
        eprintln!("{line}");
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("the boot stage did not build ({status})"));
    }
    if warnings > 0 {
        return Err(format!(
            "the bare-metal build printed {warnings} warning(s); fix them"
        ));
    }

    let elf = target.join(TARGET).join("release/boot");
    let image = flatten(&std::fs::read(&elf).map_err(|e| format!("{}: {e}", elf.display()))?)?;
    let out_dir = target.join("firmware");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let out = out_dir.join("boot.bin");
    write_if_changed(&out, &image.bytes)?;
    eprintln!(
        "build: {} ({} bytes in the file, {} bytes reserved when loaded)",
        out.display(),
        image.bytes.len(),
        image.image_size
    );
    let rtos_elf = target.join(TARGET).join("release/rtos-demo");
    let rtos = out_dir.join("rtos-demo.elf");
    let bytes = std::fs::read(&rtos_elf).map_err(|e| format!("{}: {e}", rtos_elf.display()))?;
    write_if_changed(&rtos, &bytes)?;
    eprintln!("build: {} ({} bytes)", rtos.display(), bytes.len());
    let bridge = build_bridge(&out_dir)?;
    Ok(Firmware {
        boot: out,
        rtos,
        bridge,
    })
}

const LINUX_TARGET: &str = "aarch64-unknown-linux-gnu";

/// Cross-builds the Linux-side bridge as a static arm64 Linux program with
/// Debian's rustc and arm64 standard library.
fn build_bridge(out_dir: &Path) -> Result<PathBuf, String> {
    let target = crate::target_dir();
    eprintln!("build: Linux-side bridge for {LINUX_TARGET}");
    let status = crate::cargo()
        .args([
            "build",
            "--release",
            "--package",
            "linux-bridge",
            "--target",
            LINUX_TARGET,
        ])
        .env("RUSTC", crate::setup::DEBIAN_RUSTC)
        .env(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER",
            crate::setup::LINUX_LINKER,
        )
        .env(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
            "-C target-feature=+crt-static",
        )
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("the Linux-side bridge did not build ({status})"));
    }
    let built = target.join(LINUX_TARGET).join("release/avps-bridge");
    let out = out_dir.join("avps-bridge");
    let bytes = std::fs::read(&built).map_err(|e| format!("{}: {e}", built.display()))?;
    write_if_changed(&out, &bytes)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    eprintln!("build: {} ({} bytes)", out.display(), bytes.len());
    Ok(out)
}

fn describe(toolchain: &Toolchain) -> &'static str {
    match toolchain {
        Toolchain::Prebuilt => "prebuilt core from the active toolchain",
        Toolchain::DebianBuildStd { .. } => {
            "Debian rustc-web, core and alloc built from rust-web-src"
        }
    }
}

fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// A flat image and the size its header asks the loader to reserve.
pub(crate) struct Image {
    pub(crate) bytes: Vec<u8>,
    pub(crate) image_size: u64,
}

/// Lays the ELF's loadable segments out at their link addresses (the image is
/// linked at 0) and checks the arm64 Image header at the start.
pub(crate) fn flatten(elf: &[u8]) -> Result<Image, String> {
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    let bad = |what: &str| format!("boot stage ELF: {what}");

    if elf.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return Err(bad("not a little-endian ELF64 file"));
    }
    let phoff = u64_at(0x20).ok_or_else(|| bad("truncated header"))? as usize;
    let phentsize = usize::from(u16_at(0x36).ok_or_else(|| bad("truncated header"))?);
    let phnum = usize::from(u16_at(0x38).ok_or_else(|| bad("truncated header"))?);

    let mut bytes = Vec::new();
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        const PT_LOAD: u32 = 1;
        if u32_at(ph) != Some(PT_LOAD) {
            continue;
        }
        let field = |o: usize| u64_at(ph + o).ok_or_else(|| bad("truncated program header"));
        let (offset, vaddr, filesz) =
            (field(8)? as usize, field(16)? as usize, field(32)? as usize);
        if filesz == 0 {
            continue;
        }
        let data = elf
            .get(offset..offset + filesz)
            .ok_or_else(|| bad("segment outside the file"))?;
        if bytes.len() < vaddr + filesz {
            bytes.resize(vaddr + filesz, 0);
        }
        bytes[vaddr..vaddr + filesz].copy_from_slice(data);
    }
    // arm64 Image header: magic "ARM\x64" at 0x38, image_size at 0x10.
    if bytes.get(0x38..0x3c) != Some(b"ARM\x64") {
        return Err(bad("no arm64 Image header at the start of the image"));
    }
    let image_size = u64::from_le_bytes(bytes[0x10..0x18].try_into().unwrap());
    if image_size < bytes.len() as u64 {
        return Err(bad("header image_size is smaller than the file"));
    }
    Ok(Image { bytes, image_size })
}
