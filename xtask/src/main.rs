//! The build driver: everything plain `cargo` cannot do.
//!
//! `cargo xtask run` sets up what is missing, builds the bare-metal boot stage and
//! boots it on QEMU; `cargo xtask test` does the same set-up and runs every test.
//! See `cargo xtask help`.
#![forbid(unsafe_code)]

mod firmware;
mod images;
mod setup;
mod tally;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;
use tally::Tally;

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
                         host unit tests, the loom models, Miri on shmem,
                         each fuzz target for a bounded time (nightly; set-up
                         adds Miri and cargo-fuzz), and the QEMU end-to-end
                         tests; then a table of each step's time and tests
                         passed, failed and ignored (with the reasons).
    bench [net|blk|transport]
                         Measure, and report against the physical limit of
                         the same run: `net` boots the default split and
                         times ping and TCP echo from Linux to the RTOS
                         against the RTOS's stack alone; `blk` reads the
                         RTOS's disk from Linux over the link against the
                         virtio-mmio disk QEMU gives Linux directly (1 MiB
                         sequential, 4 KiB random); `transport` runs the
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
    AMP_FUZZ_SECONDS     How long `test` runs each fuzz target (default 20).
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
    let (board, image, disks) = match target {
        Target::Board(board) => (board, firmware.boot, Vec::new()),
        Target::Manifest(manifest) => images::pack(&manifest, &firmware, &ready.guest_dir)?,
    };
    let dtb = match board.dtb {
        boards::DtbSource::QemuGenerated => None,
        boards::DtbSource::DebianKernel(rel) => Some(ready.guest_dir.join("dtbs").join(rel)),
    };
    let mut machine = harness::qemu::Machine::new(board, &image, dtb);
    machine.disks = disks;
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
    let (net, blk, transport) = match rest {
        [] => (true, true, true),
        [one] if one == "net" => (true, false, false),
        [one] if one == "blk" => (false, true, false),
        [one] if one == "transport" => (false, false, true),
        _ => {
            return Err(format!(
                "unexpected `{}`: `cargo xtask bench [net|blk|transport]`",
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
    for (on, name, bench) in [
        (net, "network device, Linux to RTOS (QEMU)", "linux_net"),
        (
            blk,
            "disks, Linux reading over the link and directly (QEMU)",
            "linux_blk",
        ),
    ] {
        if !on {
            continue;
        }
        let ready = setup::ensure()?;
        let firmware = firmware::build(&ready.toolchain)?;
        run(
            name,
            cargo()
                .args(["bench", "--package", "tests", "--bench", bench])
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
        // rpmsg-lite and OpenAMP in the same harness, beside ours (each
        // measures both in the same rounds), when the environment says where
        // the library is: the bindings are then generated (the `bindgen`
        // feature, which needs libclang). Without it a bench is not run, and
        // says so.
        let set = |v: &str| std::env::var_os(v).is_some_and(|v| !v.is_empty());
        for (name, package, include, lib) in [
            (
                "rpmsg-lite beside ours (host threads)",
                "rpmsg-lite-sys",
                "RPMSG_LITE_INCLUDE",
                "RPMSG_LITE_LIB",
            ),
            (
                "OpenAMP beside ours (host threads)",
                "openamp-sys",
                "OPENAMP_INCLUDE",
                "OPENAMP_LIB",
            ),
        ] {
            if set(include) && set(lib) {
                let mut cmd = cargo();
                aligned(&mut cmd);
                cmd.args(["bench", "--package", package, "--bench", "transport"])
                    .args(["--features", "bindgen"]);
                run(name, &mut cmd)?;
            } else {
                eprintln!(
                    "\n==> {name}: SKIPPED, no bindings: set {include} and {lib} \
                     (remoteproc/{package}/README.md)"
                );
            }
        }
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
    .env("CARGO_TARGET_DIR", target_dir().join("bench-aligned"))
}

fn test() -> Result<(), String> {
    let started = Instant::now();
    let ready = setup::ensure()?;
    let firmware = firmware::build(&ready.toolchain)?;

    let mut tally = Tally::default();
    if setup::has_cargo_subcommand("fmt") {
        tally.step("rustfmt", cargo().args(["fmt", "--all", "--check"]));
    } else {
        tally.not_run(
            "rustfmt",
            "`cargo fmt` is not installed (rustup component add rustfmt)",
        );
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
        tally.not_run(
            "clippy",
            "`cargo clippy` is not installed (rustup component add clippy)",
        );
    }
    tally.step(
        "host unit tests",
        cargo().args(["test", "--workspace", "--exclude", "tests"]),
    );
    // The ring protocol over every interleaving loom models, in its own
    // target folder: `--cfg loom` would otherwise rebuild everything the
    // other steps built.
    tally.step(
        "loom models (shmem)",
        cargo()
            .args(["test", "--package", "shmem", "--test", "loom", "--release"])
            .env("RUSTFLAGS", "--cfg loom")
            .env("CARGO_TARGET_DIR", target_dir().join("loom")),
    );
    // shmem's unsafe code under Miri (its host tests, shrunk where Miri is
    // slow), with Miri's default isolation and strict provenance. Its
    // weak-memory emulation is off: no shmem test shares a window between
    // threads (loom models that), and it aborts Miri (an internal error,
    // not a finding) on an atomic store that partly overlaps an earlier one
    // of another size, which the hostile-field tests make on purpose.
    let miri = "Miri (shmem host tests)";
    match setup::ensure_nightly(&["miri", "rust-src"]) {
        Ok(()) => tally.step(
            miri,
            nightly_cargo()
                .args(["miri", "test", "--package", "shmem"])
                .env(
                    "MIRIFLAGS",
                    "-Zmiri-strict-provenance -Zmiri-disable-weak-memory-emulation",
                ),
        ),
        Err(why) => tally.not_run(miri, &why),
    }
    fuzz(&mut tally);
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
    tally.finish()
}

/// The cargo-fuzz workspaces, relative to the workspace root.
const FUZZ_DIRS: [&str; 2] = ["fuzz", "shmem/fuzz"];
/// Seconds each fuzz target runs, unless `AMP_FUZZ_SECONDS` says otherwise.
const FUZZ_SECONDS: u64 = 20;
/// Targets run without LeakSanitizer, and why: `virtio_driver` drives
/// virtio-drivers 0.13, whose `VirtQueue` leaks the indirect descriptor
/// table of every request still in flight when it is dropped (a hostile
/// device that offers `RING_INDIRECT_DESC` and never completes a request
/// gets there at once). A leak there is theirs, not a fault of ours; every
/// other sanitizer check stays on.
const FUZZ_NO_LEAK_CHECK: [&str; 1] = ["virtio_driver"];

/// Every fuzz target for a bounded time, from its corpus if it has one
/// (`fuzz/seed.sh` seeds `manifest_and_dtb`'s); a crash fails the step and
/// leaves the input in the workspace's `artifacts/`.
fn fuzz(tally: &mut Tally) {
    let seconds = std::env::var("AMP_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(FUZZ_SECONDS);
    let ready = setup::ensure_nightly(&[]).and_then(|()| setup::ensure_cargo_fuzz());
    for dir in FUZZ_DIRS {
        let manifest = workspace_root().join(dir).join("Cargo.toml");
        let targets = match std::fs::read_to_string(&manifest) {
            Ok(text) => fuzz_targets(&text),
            Err(e) => {
                tally.not_run(
                    &format!("fuzz {dir}"),
                    &format!("cannot read {}: {e}", manifest.display()),
                );
                continue;
            }
        };
        for target in targets {
            let name = format!("fuzz {target} ({seconds} s)");
            if let Err(why) = &ready {
                tally.not_run(&name, why);
                continue;
            }
            let mut cmd = nightly_cargo();
            cmd.args([
                "fuzz",
                "run",
                "--fuzz-dir",
                dir,
                "--target-dir",
                &target_dir().join("fuzz").to_string_lossy(),
                &target,
                "--",
                &format!("-max_total_time={seconds}"),
                "-rss_limit_mb=2048",
                "-timeout=10",
            ]);
            if FUZZ_NO_LEAK_CHECK.contains(&target.as_str()) {
                // libFuzzer's check per input, and LeakSanitizer's at exit.
                cmd.arg("-detect_leaks=0")
                    .env("ASAN_OPTIONS", "detect_leaks=0");
            }
            tally.fuzz_step(&name, &mut cmd);
        }
    }
}

/// The `[[bin]]` names of a cargo-fuzz manifest: its targets.
fn fuzz_targets(manifest: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if let Some(value) = line.strip_prefix("name").map(str::trim_start) {
            if let (true, Some(v)) = (in_bin, value.strip_prefix('=')) {
                targets.push(v.trim().trim_matches('"').to_string());
            }
        }
    }
    targets
}

/// Where cargo puts what it builds: `CARGO_TARGET_DIR`, else `target/`.
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Cargo of the nightly toolchain (Miri and cargo-fuzz need it), through
/// rustup, in the workspace root.
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo"])
        .current_dir(workspace_root());
    // What the stable cargo running us exported would pin the stable tools.
    for var in ["CARGO", "RUSTC", "RUSTDOC", "RUSTUP_TOOLCHAIN"] {
        cmd.env_remove(var);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::fuzz_targets;

    #[test]
    fn fuzz_targets_are_the_bins_of_the_fuzz_manifest() {
        let manifest = "[package]\nname = \"amp-fuzz\"\n\n[[bin]]\nname = \"one\"\npath = \"a.rs\"\n\n[[bin]]\nname=\"two\"\n[workspace]\n";
        assert_eq!(fuzz_targets(manifest), ["one", "two"]);
    }
}
