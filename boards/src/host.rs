//! Host-side board facts: how QEMU emulates each board, and where the board
//! device trees fetched from Debian's packages are kept.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{Board, DtbSource};

/// The QEMU binary for all supported boards.
pub const QEMU: &str = "qemu-system-aarch64";

/// What to boot, and on which machine.
#[derive(Debug, Clone)]
pub struct Machine {
    /// The board whose QEMU machine runs.
    pub board: &'static Board,
    /// Image given to QEMU's `-kernel` (an arm64 Image).
    pub kernel: PathBuf,
    /// Device tree for `-dtb`; `None` lets QEMU generate one (virt).
    pub dtb: Option<PathBuf>,
    /// Cores; defaults to the board's.
    pub cores: u32,
    /// RAM in MiB; defaults to the board's.
    pub memory_mib: u32,
    /// A Unix socket for QEMU's monitor; `None`: no monitor.
    pub monitor: Option<PathBuf>,
    /// Raw disk images, each a `virtio-blk-device` on the machine's
    /// virtio-mmio bus (on QEMU virt the first lands in the last slot,
    /// `/virtio_mmio@a003e00`, the next in the one below, ...).
    pub disks: Vec<PathBuf>,
}

impl Machine {
    /// The board's own QEMU set-up with this kernel and device tree.
    pub fn new(board: &'static Board, kernel: &Path, dtb: Option<PathBuf>) -> Self {
        Machine {
            board,
            kernel: kernel.to_path_buf(),
            dtb,
            cores: board.qemu_cores,
            memory_mib: board.qemu_memory_mib,
            monitor: None,
            disks: Vec::new(),
        }
    }

    /// QEMU's arguments, with the console on stdio and nothing else attached.
    /// `machine_extra` is appended to `-machine` (e.g. `dumpdtb=FILE`).
    pub fn args(&self, machine_extra: Option<&str>) -> Vec<String> {
        let mut machine = self.board.qemu_machine.to_string();
        if let Some(extra) = machine_extra {
            machine.push(',');
            machine.push_str(extra);
        }
        let mut args: Vec<String> = vec!["-machine".into(), machine];
        if let Some(cpu) = self.board.qemu_cpu {
            args.extend(["-cpu".into(), cpu.into()]);
        }
        args.extend([
            "-smp".into(),
            self.cores.to_string(),
            "-m".into(),
            format!("{}M", self.memory_mib),
            "-display".into(),
            "none".into(),
            "-monitor".into(),
            match &self.monitor {
                Some(path) => format!("unix:{},server=on,wait=off", path.display()),
                None => "none".into(),
            },
            // A guest-requested reset ends QEMU: that is how boards without PSCI
            // power off.
            "-no-reboot".into(),
        ]);
        for port in 0..=self.board.qemu_console_serial {
            let backend = if port == self.board.qemu_console_serial {
                "stdio"
            } else {
                "null"
            };
            args.extend(["-serial".into(), backend.into()]);
        }
        args.extend(["-kernel".into(), self.kernel.display().to_string()]);
        if let Some(dtb) = &self.dtb {
            args.extend(["-dtb".into(), dtb.display().to_string()]);
        }
        for (i, disk) in self.disks.iter().enumerate() {
            args.extend([
                "-drive".into(),
                format!("file={},if=none,format=raw,id=disk{i}", disk.display()),
                "-device".into(),
                format!("virtio-blk-device,drive=disk{i}"),
            ]);
        }
        args
    }

    /// The device tree exactly as QEMU hands it to the guest: QEMU edits a
    /// `-dtb` file (memory, `/chosen`, unemulated devices) before boot.
    pub fn guest_dtb(&self, out: &Path) -> std::io::Result<Vec<u8>> {
        let extra = format!("dumpdtb={}", out.display());
        let status = Command::new(QEMU)
            .args(self.args(Some(&extra)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !status.success() {
            return Err(std::io::Error::other(format!(
                "{QEMU} dumpdtb failed: {status}"
            )));
        }
        std::fs::read(out)
    }
}

/// Where fetched artifacts are cached: `$AMP_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/amp-firmware`, else `~/.cache/amp-firmware`.
pub fn cache_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("AMP_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let base = if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        PathBuf::from(xdg)
    } else if let Some(home) = std::env::var_os("HOME") {
        PathBuf::from(home).join(".cache")
    } else {
        return Err("set AMP_CACHE_DIR (no HOME to cache guest artifacts under)".into());
    };
    Ok(base.join("amp-firmware"))
}

/// The unpacked guest artifacts: `dtbs/`, `vmlinuz`, `busybox`.
pub fn guest_dir() -> Result<PathBuf, String> {
    Ok(cache_dir()?.join("guest"))
}

/// The board's device tree as its loader gives it: Debian's file for real
/// boards, QEMU's own tree (dumped once and cached) for `qemu-virt`.
pub fn board_dtb(board: &'static Board) -> Result<PathBuf, String> {
    match board.dtb {
        DtbSource::DebianKernel(rel) => {
            let path = guest_dir()?.join("dtbs").join(rel);
            if path.is_file() {
                Ok(path)
            } else {
                Err(format!(
                    "{} is missing: run `cargo xtask setup` to fetch Debian's arm64 kernel package, or pass --dtb",
                    path.display()
                ))
            }
        }
        DtbSource::QemuGenerated => {
            let dir = cache_dir()?.join("dtbs");
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let machine = Machine::new(board, Path::new("/dev/null"), None);
            let path = dir.join(format!(
                "{}-{}cpu-{}M.dtb",
                board.name, machine.cores, machine.memory_mib
            ));
            if !path.is_file() {
                machine.guest_dtb(&path).map_err(|e| {
                    format!("cannot dump {}'s device tree with {QEMU}: {e}", board.name)
                })?;
            }
            Ok(path)
        }
    }
}
