//! Runs a board under QEMU with a deadline and collects its console.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use boards::Board;

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
            "none".into(),
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

    /// Boots the machine and collects console lines until QEMU exits or
    /// `deadline` passes (then QEMU is killed).
    pub fn run(&self, deadline: Duration) -> std::io::Result<Transcript> {
        let mut child = Command::new(QEMU)
            .args(self.args(None))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().expect("stdout was piped");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line.trim_end_matches('\r').to_string()).is_err() {
                    break;
                }
            }
        });
        let started = Instant::now();
        let mut lines = Vec::new();
        let mut timed_out = false;
        loop {
            let left = deadline.saturating_sub(started.elapsed());
            match rx.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(line) => lines.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) if left.is_zero() => {
                    timed_out = true;
                    let _ = child.kill();
                    break;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
        let status = child.wait()?;
        let _ = reader.join();
        lines.extend(rx.try_iter());
        let mut stderr = String::new();
        if let Some(mut err) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
        }
        Ok(Transcript {
            lines,
            exited_cleanly: !timed_out && status.success(),
            timed_out,
            elapsed: started.elapsed(),
            stderr,
        })
    }
}

/// The QEMU binary for all supported boards.
pub const QEMU: &str = "qemu-system-aarch64";

/// What a run printed, and how it ended.
#[derive(Debug)]
pub struct Transcript {
    /// Console lines, carriage returns stripped.
    pub lines: Vec<String>,
    /// QEMU exited by itself with status 0 (the guest powered off).
    pub exited_cleanly: bool,
    /// The deadline passed and QEMU was killed.
    pub timed_out: bool,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// QEMU's own diagnostics.
    pub stderr: String,
}

impl Transcript {
    /// Values of every line `key: value`.
    pub fn values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.lines
            .iter()
            .filter_map(move |l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix(": ")))
    }

    /// The value of the single line `key: value`; panics with the transcript if
    /// there is not exactly one.
    pub fn value<'a>(&'a self, key: &'a str) -> &'a str {
        let mut all = self.values(key);
        match (all.next(), all.next()) {
            (Some(v), None) => v,
            _ => panic!("expected exactly one `{key}:` line in the console output:\n{self}"),
        }
    }
}

impl std::fmt::Display for Transcript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for line in &self.lines {
            writeln!(f, "  | {line}")?;
        }
        write!(
            f,
            "  (exited cleanly: {}, timed out: {}, {:?})",
            self.exited_cleanly, self.timed_out, self.elapsed
        )?;
        if !self.stderr.trim().is_empty() {
            write!(f, "\n  qemu stderr: {}", self.stderr.trim())?;
        }
        Ok(())
    }
}
