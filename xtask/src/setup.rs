//! Set-up: the system packages the build and the tests need, and the arm64 guest
//! artifacts (board device trees, kernel, busybox) unpacked from Debian's
//! packages into a cache that later runs reuse without the network.
//!
//! Run as root, missing packages are installed; otherwise the exact commands to
//! run are printed and set-up fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How the bare-metal boot stage gets a `core` for `aarch64-unknown-none`.
#[derive(Debug, Clone)]
pub(crate) enum Toolchain {
    /// The active toolchain ships the target (`rustup target add aarch64-unknown-none`).
    Prebuilt,
    /// Debian's `rustc-web`: `core` built from `rust-web-src` with `-Zbuild-std`,
    /// linked by `ld.lld`.
    DebianBuildStd {
        /// Debian's rustc.
        rustc: PathBuf,
    },
}

/// Everything set up.
pub(crate) struct Ready {
    pub(crate) toolchain: Toolchain,
    /// Unpacked guest artifacts: `dtbs/`, `vmlinuz`, `busybox`.
    pub(crate) guest_dir: PathBuf,
}

pub(crate) const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_RUST_SRC: &str = "/usr/lib/rustlib/src/rust/library/core/Cargo.toml";
/// QEMU 10 is the first with the `imx8mp-evk` and `raspi4b` machines we use.
const QEMU_MAJOR: u32 = 10;
const GUEST_STAMP: &str = "FETCHED";
/// What a complete guest folder holds besides the stamp; a folder from an
/// older set-up that lacks one is fetched again.
const GUEST_FILES: [&str; 4] = ["vmlinuz", "busybox", "modules", "dtbs"];

/// Checks everything, installs or reports what is missing, fetches guest files.
pub(crate) fn ensure() -> Result<Ready, String> {
    let mut missing = Missing::default();

    if qemu_major().is_none_or(|v| v < QEMU_MAJOR) {
        missing.backports.push("qemu-system-arm");
    }
    for (tool, package) in [
        ("dtc", "device-tree-compiler"),
        ("fdtget", "device-tree-compiler"),
        ("cpio", "cpio"),
    ] {
        if !on_path(tool) && !missing.packages.contains(&package) {
            missing.packages.push(package);
        }
    }
    let prebuilt = has_prebuilt_target();
    if !prebuilt && !debian_toolchain_ready() {
        missing
            .packages
            .extend(["rustc-web", "rust-web-src", "lld"]);
    }
    // The Linux-side bridge is cross-built for arm64 Linux with Debian's rustc
    // and its arm64 standard library, linked statically by the cross gcc.
    if !linux_cross_ready() {
        for p in [
            "rustc-web",
            "libstd-rust-web-dev:arm64",
            "gcc-aarch64-linux-gnu",
            "libc6-dev-arm64-cross",
        ] {
            if !missing.packages.contains(&p) {
                missing.packages.push(p);
            }
        }
    }
    if !foreign_architectures().iter().any(|a| a == "arm64") {
        missing.arm64 = true;
    }

    let cache = boards::host::cache_dir()?;
    let guest_dir = cache.join("guest");
    let guest_ready = guest_dir.join(GUEST_STAMP).is_file()
        && GUEST_FILES.iter().all(|f| guest_dir.join(f).exists());

    if !missing.is_empty() {
        missing.install()?;
    }

    let toolchain = if prebuilt {
        Toolchain::Prebuilt
    } else if debian_toolchain_ready() {
        Toolchain::DebianBuildStd {
            rustc: DEBIAN_RUSTC.into(),
        }
    } else {
        return Err("no toolchain can build aarch64-unknown-none after set-up; \
                    install rustc-web, rust-web-src and lld, or `rustup target add aarch64-unknown-none`"
            .into());
    };
    if qemu_major().is_none_or(|v| v < QEMU_MAJOR) {
        return Err(format!(
            "{} {QEMU_MAJOR} or newer is needed",
            harness::qemu::QEMU
        ));
    }
    if !guest_ready {
        fetch_guest(&cache, &guest_dir)?;
    }
    Ok(Ready {
        toolchain,
        guest_dir,
    })
}

/// What is missing from the system.
#[derive(Default)]
struct Missing {
    /// Packages from the release's own suites.
    packages: Vec<&'static str>,
    /// Packages from `<codename>-backports`.
    backports: Vec<&'static str>,
    /// The arm64 foreign architecture (for the guest packages).
    arm64: bool,
}

impl Missing {
    fn is_empty(&self) -> bool {
        self.packages.is_empty() && self.backports.is_empty() && !self.arm64
    }

    /// The shell commands that fix it, in order.
    fn commands(&self) -> Result<Vec<Vec<String>>, String> {
        let mut cmds: Vec<Vec<String>> = Vec::new();
        let codename = os_codename().unwrap_or_else(|| "bookworm".into());
        let backports = format!("{codename}-backports");
        if !self.backports.is_empty() && !apt_has_suite(&backports) {
            let (uri, signed_by) = debian_source(&codename)?;
            cmds.push(vec![
                "sh".into(),
                "-c".into(),
                backports_source_command(&uri, signed_by.as_deref(), &backports),
            ]);
        }
        if self.arm64 {
            cmds.push(words("dpkg --add-architecture arm64"));
        }
        cmds.push(words("apt-get update"));
        if !self.packages.is_empty() {
            let mut c = words("apt-get install -y --no-install-recommends");
            c.extend(self.packages.iter().map(|p| p.to_string()));
            cmds.push(c);
        }
        if !self.backports.is_empty() {
            let mut c = words("apt-get install -y -t");
            c.push(backports);
            c.extend(self.backports.iter().map(|p| p.to_string()));
            cmds.push(c);
        }
        Ok(cmds)
    }

    fn install(&self) -> Result<(), String> {
        let cmds = self.commands()?;
        if !is_root() {
            let mut text = String::from("missing system packages; as root, run:\n");
            for c in &cmds {
                text.push_str("    ");
                text.push_str(&shell_line(c));
                text.push('\n');
            }
            text.push_str("then run this command again");
            return Err(text);
        }
        for c in &cmds {
            eprintln!("setup: {}", shell_line(c));
            let status = Command::new(&c[0])
                .args(&c[1..])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .map_err(|e| format!("cannot run {}: {e}", c[0]))?;
            if status.success() {
                continue;
            }
            // `apt-get update` fails when any one source is unreachable, which
            // need not matter for ours; the install that follows tells.
            if c[..2] == ["apt-get", "update"] {
                eprintln!(
                    "setup: warning: `apt-get update` reported errors ({status}); continuing"
                );
            } else {
                return Err(format!("`{}` failed ({status})", shell_line(c)));
            }
        }
        Ok(())
    }
}

/// A shell command that writes a deb822 source for `suite` from `uri`.
fn backports_source_command(uri: &str, signed_by: Option<&str>, suite: &str) -> String {
    // printf's format turns each \n into a newline, both when we run this and
    // when a user pastes the printed command.
    let mut stanza = format!("Types: deb\\nURIs: {uri}\\nSuites: {suite}\\nComponents: main\\n");
    if let Some(keyring) = signed_by {
        stanza.push_str(&format!("Signed-By: {keyring}\\n"));
    }
    format!("printf '{stanza}' > /etc/apt/sources.list.d/{suite}.sources")
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn shell_line(cmd: &[String]) -> String {
    cmd.iter()
        .map(|w| {
            if w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:".contains(c))
            {
                w.clone()
            } else {
                format!(
                    "\"{}\"",
                    w.replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('\n', "\\n")
                )
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A nightly toolchain with `components` (Miri and cargo-fuzz need one),
/// installed through rustup when missing. `Err` says why it cannot be had.
pub(crate) fn ensure_nightly(components: &[&str]) -> Result<(), String> {
    if !on_path("rustup") {
        return Err("rustup is not installed, so there is no nightly toolchain".into());
    }
    let toolchains = output("rustup", &["toolchain", "list"]).unwrap_or_default();
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        run_logged(
            "rustup",
            &["toolchain", "install", "nightly", "--profile", "minimal"],
        )?;
    }
    let installed = output(
        "rustup",
        &["component", "list", "--toolchain", "nightly", "--installed"],
    )
    .unwrap_or_default();
    let missing: Vec<&str> = components
        .iter()
        .copied()
        .filter(|c| {
            !installed
                .lines()
                .any(|l| l == *c || l.starts_with(&format!("{c}-")))
        })
        .collect();
    if !missing.is_empty() {
        let mut args = vec!["component", "add"];
        args.extend(&missing);
        args.extend(["--toolchain", "nightly"]);
        run_logged("rustup", &args)?;
    }
    Ok(())
}

/// `cargo fuzz`, installed with `cargo install` when missing.
pub(crate) fn ensure_cargo_fuzz() -> Result<(), String> {
    if on_path("cargo-fuzz") {
        return Ok(());
    }
    eprintln!("setup: cargo install cargo-fuzz --locked");
    let status = crate::cargo()
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .map_err(|e| format!("cannot run cargo install: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`cargo install cargo-fuzz --locked` failed ({status})"
        ))
    }
}

/// Runs a set-up command, saying so first.
fn run_logged(cmd: &str, args: &[&str]) -> Result<(), String> {
    let line = format!("{cmd} {}", args.join(" "));
    eprintln!("setup: {line}");
    match Command::new(cmd).args(args).status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("`{line}` failed ({s})")),
        Err(e) => Err(format!("cannot run {cmd}: {e}")),
    }
}

fn is_root() -> bool {
    output("id", &["-u"]).is_some_and(|s| s.trim() == "0")
}

/// Stdout of a command that succeeded.
fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

fn qemu_major() -> Option<u32> {
    let text = output(harness::qemu::QEMU, &["--version"])?;
    let version = text.split("version ").nth(1)?;
    version.split('.').next()?.trim().parse().ok()
}

/// Whether the rustc cargo will use has a prebuilt `core` for the target.
fn has_prebuilt_target() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Some(sysroot) = output(&rustc, &["--print", "sysroot"]) else {
        return false;
    };
    let lib = Path::new(sysroot.trim()).join("lib/rustlib/aarch64-unknown-none/lib");
    std::fs::read_dir(lib).is_ok_and(|mut d| {
        d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("libcore-")))
    })
}

/// Debian's arm64 Linux standard library and cross linker.
pub(crate) const LINUX_STD: &str = "/usr/lib/rustlib/aarch64-unknown-linux-gnu/lib";
/// The cross linker for the Linux-side programs.
pub(crate) const LINUX_LINKER: &str = "aarch64-linux-gnu-gcc";

fn linux_cross_ready() -> bool {
    Path::new(DEBIAN_RUSTC).is_file() && Path::new(LINUX_STD).is_dir() && on_path(LINUX_LINKER)
}

fn debian_toolchain_ready() -> bool {
    Path::new(DEBIAN_RUSTC).is_file() && Path::new(DEBIAN_RUST_SRC).is_file() && on_path("ld.lld")
}

fn foreign_architectures() -> Vec<String> {
    output("dpkg", &["--print-foreign-architectures"])
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

fn os_codename() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
}

/// Every apt source file's text.
fn apt_sources() -> Vec<String> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(
            dir.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "list" || x == "sources")),
        );
    }
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .collect()
}

fn apt_has_suite(suite: &str) -> bool {
    apt_sources().iter().any(|text| {
        text.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .any(|l| l.split_whitespace().any(|w| w == suite))
    })
}

/// The URI (and keyring) of the configured Debian source for `codename`, so the
/// backports suite comes from the same mirror.
fn debian_source(codename: &str) -> Result<(String, Option<String>), String> {
    source_for_suite(&apt_sources(), codename).ok_or_else(|| {
        format!(
            "no apt source for Debian {codename} found; add {codename}-backports to apt's sources"
        )
    })
}

/// The URI and keyring of the entry for `codename` among apt source files, in
/// deb822 (`.sources`) or one-line (`.list`) form.
fn source_for_suite(files: &[String], codename: &str) -> Option<(String, Option<String>)> {
    for text in files {
        // deb822 stanzas.
        for stanza in text.split("\n\n") {
            let field = |name: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
                    .map(|v| v.trim().to_string())
            };
            let suites = field("Suites").unwrap_or_default();
            if suites.split_whitespace().any(|s| s == codename) {
                if let Some(uri) =
                    field("URIs").and_then(|u| u.split_whitespace().next().map(str::to_string))
                {
                    return Some((uri, field("Signed-By")));
                }
            }
        }
        // One-line entries: deb [options] URI suite components...
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("deb "))
        {
            let mut words = line
                .split_whitespace()
                .skip(1)
                .filter(|w| !w.starts_with('['));
            if let (Some(uri), Some(suite)) = (words.next(), words.next()) {
                if suite == codename {
                    return Some((uri.to_string(), None));
                }
            }
        }
    }
    None
}

pub(crate) fn has_cargo_subcommand(name: &str) -> bool {
    crate::cargo()
        .args([name, "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Downloads Debian's arm64 kernel and busybox packages and unpacks what the
/// tests and guests use: `dtbs/` (the kernel package's device trees),
/// `vmlinuz`, `modules/` (the kernel modules a Linux partition loads,
/// `harness::fixtures::GUEST_MODULES`) and `busybox`.
fn fetch_guest(cache: &Path, guest_dir: &Path) -> Result<(), String> {
    let kernel = kernel_package()?;
    let debs = cache.join("debs");
    std::fs::create_dir_all(&debs).map_err(|e| format!("{}: {e}", debs.display()))?;
    eprintln!(
        "setup: fetching {kernel}:arm64 and busybox-static:arm64 into {}",
        debs.display()
    );
    let status = Command::new("apt-get")
        .args([
            "download",
            &format!("{kernel}:arm64"),
            "busybox-static:arm64",
        ])
        .current_dir(&debs)
        .status()
        .map_err(|e| format!("cannot run apt-get: {e}"))?;
    if !status.success() {
        return Err(format!(
            "`apt-get download {kernel}:arm64 busybox-static:arm64` failed ({status})"
        ));
    }

    let staging = cache.join("guest.partial");
    let _ = std::fs::remove_dir_all(&staging);
    let unpacked = staging.join("unpacked");
    std::fs::create_dir_all(&unpacked).map_err(|e| format!("{}: {e}", unpacked.display()))?;
    for prefix in [format!("{kernel}_"), "busybox-static_".into()] {
        let deb = newest_deb(&debs, &prefix)?;
        run("dpkg-deb", &[Path::new("-x"), &deb, &unpacked])?;
    }
    let modules = unpacked.join("usr/lib").join(&kernel);
    let linux_version = kernel.trim_start_matches("linux-image-");
    move_into(&modules, &staging.join("dtbs"))?;
    move_into(
        &unpacked.join(format!("boot/vmlinuz-{linux_version}")),
        &staging.join("vmlinuz"),
    )?;
    move_into(&unpacked.join("bin/busybox"), &staging.join("busybox"))?;
    std::fs::create_dir_all(staging.join("modules")).map_err(|e| e.to_string())?;
    for m in harness::fixtures::GUEST_MODULES {
        move_into(
            &unpacked.join(format!("lib/modules/{linux_version}/kernel/{m}")),
            &staging
                .join("modules")
                .join(harness::fixtures::module_name(m)),
        )?;
    }
    let _ = std::fs::remove_dir_all(&unpacked);
    std::fs::write(
        staging.join(GUEST_STAMP),
        format!("{kernel}\nbusybox-static\n"),
    )
    .map_err(|e| format!("{}: {e}", staging.display()))?;
    let _ = std::fs::remove_dir_all(guest_dir);
    std::fs::rename(&staging, guest_dir).map_err(|e| format!("{}: {e}", guest_dir.display()))?;
    eprintln!("setup: guest artifacts ready in {}", guest_dir.display());
    Ok(())
}

/// The versioned kernel package `linux-image-arm64:arm64` depends on.
fn kernel_package() -> Result<String, String> {
    let deps = output("apt-cache", &["depends", "linux-image-arm64:arm64"]).unwrap_or_default();
    deps.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(|d| d.trim().trim_end_matches(":arm64"))
        .find(|d| d.starts_with("linux-image-") && d.ends_with("-arm64"))
        .map(str::to_string)
        .ok_or_else(|| {
            "apt knows no linux-image-arm64:arm64; run `dpkg --add-architecture arm64 && apt-get update` as root"
                .to_string()
        })
}

fn newest_deb(dir: &Path, prefix: &str) -> Result<PathBuf, String> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with(prefix) && n.ends_with("_arm64.deb")
            })
        })
        .collect();
    found.sort();
    found
        .pop()
        .ok_or_else(|| format!("no {prefix}*_arm64.deb in {}", dir.display()))
}

fn move_into(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::rename(from, to).map_err(|e| format!("{} -> {}: {e}", from.display(), to.display()))
}

fn run(cmd: &str, args: &[&Path]) -> Result<(), String> {
    let status = Command::new(cmd)
        .args(args)
        .status()
        .map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd} failed ({status})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backports_come_from_the_configured_mirror() {
        let deb822 = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n\
                      Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
                      Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n";
        assert_eq!(
            source_for_suite(&[deb822.to_string()], "bookworm"),
            Some((
                "http://mirror.example/debian".into(),
                Some("/usr/share/keyrings/debian-archive-keyring.gpg".into())
            ))
        );
        let one_line = "# comment\ndeb [arch=amd64] http://mirror.example/debian trixie main\n";
        assert_eq!(
            source_for_suite(&[one_line.to_string()], "trixie"),
            Some(("http://mirror.example/debian".into(), None))
        );
        assert_eq!(source_for_suite(&[one_line.to_string()], "bookworm"), None);
    }

    #[test]
    fn backports_source_is_written_the_same_run_or_pasted() {
        let dir = std::env::temp_dir().join(format!("xtask-apt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cmd = backports_source_command(
            "http://mirror.example/debian",
            Some("/k.gpg"),
            "bookworm-backports",
        )
        .replace("/etc/apt/sources.list.d", dir.to_str().unwrap());
        let file = dir.join("bookworm-backports.sources");
        let expected =
            "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm-backports\n\
                        Components: main\nSigned-By: /k.gpg\n";
        // As set-up runs it (sh -c CMD), and as a user pastes the printed line.
        let run = Command::new("sh").args(["-c", &cmd]).status().unwrap();
        assert!(run.success());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), expected);
        std::fs::remove_file(&file).unwrap();
        let printed = shell_line(&["sh".into(), "-c".into(), cmd]);
        let pasted = Command::new("sh").args(["-c", &printed]).status().unwrap();
        assert!(pasted.success());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), expected);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn printed_commands_quote_what_the_shell_would_split() {
        let cmd = words("apt-get install -y");
        assert_eq!(shell_line(&cmd), "apt-get install -y");
        assert_eq!(shell_line(&["echo".into(), "a b".into()]), "echo \"a b\"");
    }
}
