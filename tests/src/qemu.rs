//! Runs a board under QEMU with a deadline and collects its console.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use boards::host::{Machine, QEMU};

/// Boots the machine and collects console lines until QEMU exits or
/// `deadline` passes (then QEMU is killed).
pub fn run(machine: &Machine, deadline: Duration) -> std::io::Result<Transcript> {
    run_until(machine, deadline, |_| false)
}

/// As [`run_until`], typing into the console: when a line contains a
/// script entry's trigger, its text is sent (each entry once, in order).
pub fn run_scripted(
    machine: &Machine,
    deadline: Duration,
    script: &[(&str, &str)],
    done: impl FnMut(&str) -> bool,
) -> std::io::Result<Transcript> {
    run_inner(machine, deadline, script, done)
}

/// As [`run`], but also stops (and kills QEMU) once a line satisfies `done`;
/// `Transcript::reached` then says so.
pub fn run_until(
    machine: &Machine,
    deadline: Duration,
    done: impl FnMut(&str) -> bool,
) -> std::io::Result<Transcript> {
    run_inner(machine, deadline, &[], done)
}

fn run_inner(
    machine: &Machine,
    deadline: Duration,
    script: &[(&str, &str)],
    mut done: impl FnMut(&str) -> bool,
) -> std::io::Result<Transcript> {
    let mut child = Command::new(QEMU)
        .args(machine.args(None))
        .stdin(if script.is_empty() {
            Stdio::null()
        } else {
            Stdio::piped()
        })
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
    let mut reached = false;
    let mut typed = 0;
    loop {
        let left = deadline.saturating_sub(started.elapsed());
        match rx.recv_timeout(left.min(Duration::from_millis(100))) {
            Ok(line) => {
                if let Some((trigger, text)) = script.get(typed) {
                    if line.contains(trigger) {
                        if let Some(stdin) = child.stdin.as_mut() {
                            use std::io::Write;
                            let _ = stdin.write_all(text.as_bytes());
                            let _ = stdin.flush();
                        }
                        typed += 1;
                    }
                }
                reached = done(&line);
                lines.push(line);
                if reached {
                    let _ = child.kill();
                    break;
                }
            }
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
    let t = Transcript {
        lines,
        exited_cleanly: !timed_out && !reached && status.success(),
        timed_out,
        reached,
        elapsed: started.elapsed(),
        stderr,
    };
    if std::env::var_os(ENV_SHOW).is_some() {
        eprintln!("{t}");
    }
    Ok(t)
}

/// Sends one command to a running QEMU's monitor (see `Machine::monitor`) and
/// returns what it answered.
pub fn monitor(socket: &std::path::Path, command: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut read_to_prompt =
        |stream: &mut std::os::unix::net::UnixStream, seen: &mut Vec<u8>| -> std::io::Result<()> {
            while !String::from_utf8_lossy(seen).ends_with("(qemu) ") {
                let n = stream.read(&mut chunk)?;
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&chunk[..n]);
            }
            Ok(())
        };
    read_to_prompt(&mut stream, &mut seen)?;
    seen.clear();
    stream.write_all(format!("{command}\n").as_bytes())?;
    read_to_prompt(&mut stream, &mut seen)?;
    Ok(String::from_utf8_lossy(&seen).into_owned())
}

/// Set (to anything) to print every run's transcript, passing or not.
pub const ENV_SHOW: &str = "AMP_SHOW_TRANSCRIPTS";

/// What a run printed, and how it ended.
#[derive(Debug)]
pub struct Transcript {
    /// Console lines, carriage returns stripped.
    pub lines: Vec<String>,
    /// QEMU exited by itself with status 0 (the guest powered off).
    pub exited_cleanly: bool,
    /// The deadline passed and QEMU was killed.
    pub timed_out: bool,
    /// The awaited line came (see [`run_until`]) and QEMU was stopped.
    pub reached: bool,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// QEMU's own diagnostics.
    pub stderr: String,
}

impl Transcript {
    /// Whether some console line contains `needle`.
    pub fn has(&self, needle: &str) -> bool {
        self.lines.iter().any(|l| l.contains(needle))
    }

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
