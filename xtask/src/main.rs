//! The build driver: everything plain `cargo` cannot do.
//!
//! `cargo xtask run` sets up what is missing, builds the bare-metal boot stage and
//! boots it on QEMU; `cargo xtask test` does the same set-up and runs every test.
//! See `cargo xtask help`.
#![forbid(unsafe_code)]

mod firmware;
mod images;
mod setup;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

const HELP: &str = "\
cargo xtask: set up, build and run the AMP partitioning firmware

USAGE:
    cargo xtask <COMMAND> [OPTIONS]

COMMANDS:
    run                  Set up, build, pack the default split
                         (manifests/qemu-virt/linux-rtos.toml: Debian's Linux on
                         cores 0-1, the demo RTOS on cores 2-3) and boot it on
                         QEMU virt, leaving you at the Linux shell; the RTOS's
                         console is /dev/avps/linux-rtos/console. Quit QEMU
                         with Ctrl-A X.
    run --manifest FILE  The same for another split: every ELF partition gets
                         the demo RTOS, Linux partitions Debian's arm64 kernel
                         and a busybox initramfs (images in target/images/).
                         Quit QEMU with Ctrl-A X.
    run --board NAME     Boot the bare boot stage on a board's QEMU machine
                         (qemu-virt, rpi4, rpi3, imx8mp-evk): it reports what
                         the device tree says and powers the machine off.
    test                 Set up, build, then run every check: rustfmt, clippy,
                         host unit tests, and the QEMU end-to-end tests.
    bench [net|transport]
                         Measure, and report against the physical limit of
                         the same run: `net` boots the default split and
                         times ping and TCP echo from Linux to the RTOS
                         against the RTOS's stack alone; `transport` runs the
                         shared-memory transport benchmark on two host
                         threads (built with functions and loops 64-byte
                         aligned, in target/bench-aligned), then rpmsg-lite
                         beside it when RPMSG_LITE_INCLUDE/RPMSG_LITE_LIB
                         are set and OpenAMP when OPENAMP_INCLUDE/OPENAMP_LIB
                         are (else SKIPPED). Both without an argument.
    build                Build the boot stage into target/firmware/boot.bin.
    setup                Install what is missing (as root) or print the exact
                         commands to run; fetch and unpack the arm64 guest
                         artifacts from Debian's packages into the cache.
    boards               List the supported boards.
    help                 Print this help.

ENVIRONMENT:
    AMP_CACHE_DIR        Where fetched guest artifacts are kept
                         (default: $XDG_CACHE_HOME/amp-firmware or ~/.cache/amp-firmware).
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run_args(&args[1..]).and_then(run),
        Some("test") => no_args(&args[1..]).and_then(|()| test()),
        Some("build") => no_args(&args[1..]).and_then(|()| build()),
        Some("bench") => bench(&args[1..]),
        Some("setup") => no_args(&args[1..]).and_then(|()| setup::ensure().map(drop)),
        Some("boards") => {
            for b in boards::BOARDS {
                println!("{:<12} QEMU machine {}", b.name, b.qemu_machine);
            }
            Ok(())
        }
        Some("help" | "-h" | "--help") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`; see `cargo xtask help`")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn no_args(rest: &[String]) -> Result<(), String> {
    match rest.first() {
        None => Ok(()),
        Some(a) => Err(format!("unexpected argument `{a}`; see `cargo xtask help`")),
    }
}

/// The workspace root (xtask lives one level below it).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

/// The cargo that runs us, so nested builds use the same toolchain.
pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

fn build() -> Result<(), String> {
    let toolchain = setup::ensure()?.toolchain;
    firmware::build(&toolchain).map(drop)
}

/// The split `cargo xtask run` boots by default.
const DEFAULT_MANIFEST: &str = "manifests/qemu-virt/linux-rtos.toml";

/// What `run` boots.
enum Target {
    /// The bare boot stage on a board (first light).
    Board(&'static boards::Board),
    /// A packed split from a manifest.
    Manifest(PathBuf),
}

fn run_args(rest: &[String]) -> Result<Target, String> {
    match rest {
        [] => Ok(Target::Manifest(workspace_root().join(DEFAULT_MANIFEST))),
        [flag, name] if flag == "--board" => boards::Board::by_name(name)
            .map(Target::Board)
            .ok_or_else(|| {
                let known: Vec<_> = boards::BOARDS.iter().map(|b| b.name).collect();
                format!("unknown board `{name}`; known boards: {}", known.join(", "))
            }),
        [flag, path] if flag == "--manifest" => Ok(Target::Manifest(PathBuf::from(path))),
        _ => Err("usage: cargo xtask run [--board NAME | --manifest FILE]".into()),
    }
}

fn run(target: Target) -> Result<(), String> {
    let ready = setup::ensure()?;
    let firmware = firmware::build(&ready.toolchain)?;
    let (board, image) = match target {
        Target::Board(board) => (board, firmware.boot),
        Target::Manifest(manifest) => images::pack(&manifest, &firmware, &ready.guest_dir)?,
    };
    let dtb = match board.dtb {
        boards::DtbSource::QemuGenerated => None,
        boards::DtbSource::DebianKernel(rel) => Some(ready.guest_dir.join("dtbs").join(rel)),
    };
    let machine = harness::qemu::Machine::new(board, &image, dtb);
    let args = machine.args(None);
    eprintln!(
        "booting on {}: {} {}",
        board.name,
        harness::qemu::QEMU,
        args.join(" ")
    );
    eprintln!("(the console is this terminal; quit QEMU with Ctrl-A X)");
    let status = Command::new(harness::qemu::QEMU)
        .args(&args)
        .status()
        .map_err(|e| format!("cannot start {}: {e}", harness::qemu::QEMU))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("QEMU exited with {status}"))
    }
}

fn bench(rest: &[String]) -> Result<(), String> {
    let (net, transport) = match rest {
        [] => (true, true),
        [one] if one == "net" => (true, false),
        [one] if one == "transport" => (false, true),
        _ => {
            return Err(format!(
                "unexpected `{}`: `cargo xtask bench [net|transport]`",
                rest.join(" ")
            ))
        }
    };
    let run = |name: &str, cmd: &mut Command| -> Result<(), String> {
        eprintln!("\n==> {name}");
        let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("{name} failed ({status})"))
        }
    };
    if net {
        let ready = setup::ensure()?;
        let firmware = firmware::build(&ready.toolchain)?;
        run(
            "network device, Linux to RTOS (QEMU)",
            cargo()
                .args(["bench", "--package", "tests", "--bench", "linux_net"])
                .env(harness::ENV_BOOT_IMAGE, &firmware.boot)
                .env(harness::ENV_RTOS_IMAGE, &firmware.rtos)
                .env(harness::ENV_BRIDGE_IMAGE, &firmware.bridge)
                .env(harness::ENV_GUEST_DIR, &ready.guest_dir),
        )?;
    }
    if transport {
        run(
            "shared-memory transport (host threads)",
            aligned(cargo().args(["bench", "--package", "remoteproc", "--bench", "transport"])),
        )?;
        // rpmsg-lite in the same harness, beside ours (it measures both in the
        // same rounds). The environment passes through: with
        // RPMSG_LITE_INCLUDE and RPMSG_LITE_LIB set the bindings are
        // generated (the `bindgen` feature, which needs libclang); without
        // them the bench prints SKIPPED and succeeds.
        let mut rl = cargo();
        aligned(&mut rl);
        rl.args([
            "bench",
            "--package",
            "rpmsg-lite-sys",
            "--bench",
            "transport",
        ]);
        let set = |v: &str| std::env::var_os(v).is_some_and(|v| !v.is_empty());
        if set("RPMSG_LITE_INCLUDE") && set("RPMSG_LITE_LIB") {
            rl.args(["--features", "bindgen"]);
        }
        run("rpmsg-lite beside ours (host threads)", &mut rl)?;
        // OpenAMP likewise, with OPENAMP_INCLUDE and OPENAMP_LIB.
        let mut oa = cargo();
        aligned(&mut oa);
        oa.args(["bench", "--package", "openamp-sys", "--bench", "transport"]);
        if set("OPENAMP_INCLUDE") && set("OPENAMP_LIB") {
            oa.args(["--features", "bindgen"]);
        }
        run("OpenAMP beside ours (host threads)", &mut oa)?;
    }
    Ok(())
}

/// The transport benchmarks are built with every function and loop 64-byte
/// aligned, in their own target folder: without it, where the linker placed
/// the copy loops moved the raw ring (the ceiling) between 16 and 25 GB/s,
/// and our figures by up to a fifth, from one build to the next.
fn aligned(cmd: &mut Command) -> &mut Command {
    cmd.env(
        "RUSTFLAGS",
        "-C llvm-args=-align-all-functions=6 -C llvm-args=-align-loops=64",
    )
    .env(
        "CARGO_TARGET_DIR",
        workspace_root().join("target/bench-aligned"),
    )
}

fn test() -> Result<(), String> {
    let started = Instant::now();
    let ready = setup::ensure()?;
    let firmware = firmware::build(&ready.toolchain)?;

    let mut tally = Tally::default();
    if setup::has_cargo_subcommand("fmt") {
        tally.step("rustfmt", cargo().args(["fmt", "--all", "--check"]));
    } else {
        eprintln!(
            "\n==> rustfmt: NOT RUN, `cargo fmt` is not installed (rustup component add rustfmt)"
        );
        tally.failed_steps.push("rustfmt (not installed)".into());
    }
    if setup::has_cargo_subcommand("clippy") {
        tally.step(
            "clippy",
            cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--quiet",
                "--",
                "-D",
                "warnings",
            ]),
        );
    } else {
        eprintln!(
            "\n==> clippy: NOT RUN, `cargo clippy` is not installed (rustup component add clippy)"
        );
        tally.failed_steps.push("clippy (not installed)".into());
    }
    tally.step(
        "host unit tests",
        cargo().args(["test", "--workspace", "--exclude", "tests"]),
    );
    tally.step(
        "QEMU end-to-end tests",
        cargo()
            .args(["test", "--package", "tests"])
            .env(harness::ENV_BOOT_IMAGE, &firmware.boot)
            .env(harness::ENV_RTOS_IMAGE, &firmware.rtos)
            .env(harness::ENV_BRIDGE_IMAGE, &firmware.bridge)
            .env(harness::ENV_GUEST_DIR, &ready.guest_dir),
    );

    eprintln!("\nall checks took {:.1} s", started.elapsed().as_secs_f64());
    // The summary line CI reads: every test of every step.
    println!(
        "tests: {} passed, {} failed",
        tally.tests_passed, tally.tests_failed
    );
    if tally.tests_passed == 0 {
        return Err("no test ran".into());
    }
    if tally.failed_steps.is_empty() {
        Ok(())
    } else {
        Err(format!("failed: {}", tally.failed_steps.join(", ")))
    }
}

/// Outcome of the checks `cargo xtask test` ran.
#[derive(Default)]
struct Tally {
    failed_steps: Vec<String>,
    tests_passed: u64,
    tests_failed: u64,
}

impl Tally {
    /// Runs one check, passing its output through and adding up the `cargo
    /// test` result lines it prints.
    fn step(&mut self, name: &str, cmd: &mut Command) {
        eprintln!("\n==> {name}");
        let t = Instant::now();
        let status = cmd.stdout(Stdio::piped()).spawn().and_then(|mut child| {
            let stdout = child.stdout.take().expect("stdout was piped");
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("{line}");
                if let Some(result) = line.strip_prefix("test result: ") {
                    self.tests_passed += count(result, " passed");
                    self.tests_failed += count(result, " failed");
                }
            }
            child.wait()
        });
        match status {
            Ok(s) if s.success() => {
                eprintln!("==> {name}: ok ({:.1} s)", t.elapsed().as_secs_f64())
            }
            Ok(s) => {
                eprintln!("==> {name}: FAILED ({s})");
                self.failed_steps.push(name.to_string());
            }
            Err(e) => {
                eprintln!("==> {name}: could not start: {e}");
                self.failed_steps.push(name.to_string());
            }
        }
    }
}

/// The number before `label` in a `cargo test` result line
/// (`ok. 5 passed; 0 failed; ...`).
fn count(result: &str, label: &str) -> u64 {
    result
        .split(';')
        .find_map(|part| part.trim_end().strip_suffix(label))
        .and_then(|n| n.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn counts_cargo_test_result_lines() {
        let line =
            "ok. 5 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.58s";
        assert_eq!(count(line, " passed"), 5);
        assert_eq!(count(line, " failed"), 2);
        assert_eq!(count("FAILED. 0 passed; 3 failed; 0 ignored", " failed"), 3);
    }
}
