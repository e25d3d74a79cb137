//! The integrators' tool on the committed manifests, run as a user runs it
//! (the `amp` binary, against the real board device trees that `cargo xtask
//! setup` fetched, and QEMU's own tree for qemu-virt):
//! every example is accepted; every rejected example yields exactly its code, at
//! the line and column its committed `.stderr` shows; the generated device trees
//! pass `dtc` and say what the plan says.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use partitioner::diag::Code;
use tests::fixtures::images_for;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn manifests(folder: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root().join("manifests").join(folder)).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && folder.is_empty() && path.file_name().unwrap() != "rejected" {
            out.extend(manifests(path.file_name().unwrap().to_str().unwrap()));
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// A scratch folder removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("amp-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn amp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amp"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap()
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root()).unwrap().display().to_string()
}

#[test]
fn every_example_passes_check() {
    let examples = manifests("");
    assert!(
        examples.len() >= 6,
        "examples for every board and split: {examples:?}"
    );
    for m in examples {
        let scratch = Scratch::new("ok");
        images_for(&m, &scratch.0);
        let out = amp(&[
            "check",
            &relative(&m),
            "--images",
            scratch.0.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{} must pass check:\n{}",
            m.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: "));
    }
}

/// Human output with the scratch images folder replaced by `<images>`.
fn human(manifest: &Path) -> (i32, String, String) {
    let scratch = Scratch::new("rejected");
    images_for(manifest, &scratch.0);
    let images = scratch.0.to_str().unwrap();
    let out = amp(&["check", &relative(manifest), "--images", images]);
    let json = amp(&[
        "check",
        &relative(manifest),
        "--images",
        images,
        "--format",
        "json",
    ]);
    let text = String::from_utf8_lossy(&out.stderr).replace(images, "<images>");
    (
        out.status.code().unwrap_or(-1),
        text,
        String::from_utf8_lossy(&json.stdout).into_owned(),
    )
}

#[test]
fn every_rejected_example_yields_exactly_its_code_where_expected() {
    let bless = std::env::var_os("AMP_BLESS").is_some();
    let rejected = manifests("rejected");
    for m in &rejected {
        let code = m.file_name().unwrap().to_str().unwrap()[..5].to_string();
        let (status, text, json) = human(m);
        assert_eq!(
            status,
            1,
            "{}: exit status 1 expected:\n{text}",
            m.display()
        );
        let codes: Vec<&str> = json
            .match_indices("\"code\":\"")
            .map(|(i, _)| &json[i + 8..i + 13])
            .collect();
        assert_eq!(
            codes,
            [code.as_str()],
            "{}: exactly its code expected:\n{text}",
            m.display()
        );
        let golden = m.with_extension("stderr");
        if bless {
            std::fs::write(&golden, &text).unwrap();
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_else(|_| {
            panic!(
                "{} missing: run with AMP_BLESS=1 and review it",
                golden.display()
            )
        });
        assert_eq!(
            text,
            expected,
            "{}: diagnostic differs from {}",
            m.display(),
            golden.display()
        );
        // The JSON carries the same line and column as the human output.
        let arrow = expected
            .lines()
            .find(|l| l.trim_start().starts_with("-->"))
            .unwrap();
        let at = arrow.rsplit(':').take(2).collect::<Vec<_>>();
        assert!(
            json.contains(&format!("\"line\":{},\"column\":{}", at[1], at[0])),
            "{json}"
        );
    }
    for code in Code::ALL {
        assert!(
            rejected.iter().any(|m| m
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(code.as_str())),
            "no rejected example for {} ({})",
            code.as_str(),
            code.summary()
        );
    }
}

/// `fdtget` on a generated tree.
fn fdtget(dtb: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("fdtget")
        .args(args.iter().take(args.len().saturating_sub(2)))
        .arg(dtb)
        .args(&args[args.len().saturating_sub(2)..])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn generated_device_trees_pass_dtc_and_hold_only_the_partitions_share() {
    for m in manifests("") {
        let scratch = Scratch::new("dtb");
        images_for(&m, &scratch.0);
        let images = scratch.0.to_str().unwrap().to_string();
        let plan_file = scratch.0.join("plan.bin");
        let out = amp(&[
            "plan",
            &relative(&m),
            "--images",
            &images,
            "-o",
            plan_file.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let plan =
            amp_plan::format::decode(&std::fs::read(&plan_file).unwrap()).expect("plan decodes");
        for (index, part) in plan.partitions.iter().enumerate() {
            let dtb = scratch.0.join(format!("{}.dtb", part.name));
            let out = amp(&[
                "dtb",
                &relative(&m),
                &part.name,
                "--images",
                &images,
                "-o",
                dtb.to_str().unwrap(),
            ]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let dts = Command::new("dtc")
                .args(["-q", "-I", "dtb", "-O", "dts"])
                .arg(&dtb)
                .output()
                .unwrap();
            assert!(
                dts.status.success(),
                "{}: dtc rejects {}",
                m.display(),
                part.name
            );

            // Cores and memory, read back with the fdt reader.
            let blob = std::fs::read(&dtb).unwrap();
            let tree = amp_plan::dt::DeviceTree::new(&blob).expect("fdt reads it");
            let cores: Vec<u64> = tree.cpus().filter_map(|c| c.mpidr).collect();
            let mut expected: Vec<u64> = part.cores.iter().map(|c| c.1).collect();
            expected.sort();
            let mut got = cores.clone();
            got.sort();
            assert_eq!(got, expected, "{}: {} cores", m.display(), part.name);
            let memory: Vec<(u64, u64)> = tree.memory().map(|r| (r.base, r.size)).collect();
            assert_eq!(memory, part.memory, "{}: {} memory", m.display(), part.name);

            // Every device another partition owns is disabled.
            for (other, p) in plan.partitions.iter().enumerate() {
                for d in p.devices.iter().filter(|_| other != index) {
                    assert_eq!(
                        fdtget(&dtb, &["-t", "s", d, "status"]).as_deref(),
                        Some("disabled"),
                        "{}: {} sees {}'s {d}",
                        m.display(),
                        part.name,
                        p.name
                    );
                }
            }
            assert_eq!(
                fdtget(&dtb, &["-t", "s", "/chosen", "stdout-path"]),
                part.console.clone(),
                "{}: {} console",
                m.display(),
                part.name
            );
            // Its links appear with their windows reserved.
            let on = plan
                .links
                .iter()
                .filter(|l| l.host as usize == index || l.remote as usize == index)
                .count();
            let nodes = fdtget(&dtb, &["-l", "/amp-links"]).map_or(0, |s| s.lines().count());
            assert_eq!(nodes, on, "{}: {} link nodes", m.display(), part.name);
            // A link's network device gets the link's own /24, so two links
            // never share a network; both sides read the same one.
            for l in tree.links() {
                if !l.devices().any(|(kind, _)| kind == "net") {
                    continue;
                }
                let n = plan
                    .links
                    .iter()
                    .position(|p| p.base == l.window.0)
                    .unwrap();
                assert_eq!(
                    l.net_subnet(),
                    Some(([10, 77, n as u8, 0], 24)),
                    "{}: {} link {}",
                    m.display(),
                    part.name,
                    l.name
                );
            }
        }
    }
}

#[test]
fn show_draws_every_partition_in_text_and_svg() {
    let m = root().join("manifests/qemu-virt/linux-rtos.toml");
    let scratch = Scratch::new("show");
    images_for(&m, &scratch.0);
    let svg = scratch.0.join("map.svg");
    let out = amp(&[
        "show",
        &relative(&m),
        "--images",
        scratch.0.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "linux",
        "rtos",
        "link linux-rtos",
        "boot stage",
        "/pl011@9000000",
    ] {
        assert!(text.contains(needle), "show lacks {needle}:\n{text}");
    }
    let svg = std::fs::read_to_string(svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains(">linux") || svg.contains("linux 0x"), "{svg}");
}

#[test]
fn bad_invocations_say_what_is_wrong() {
    let out = amp(&["check", "no/such/manifest.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read no/such/manifest.toml"));
    let out = amp(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["check", "plan", "dtb", "show"] {
        assert!(help.contains(cmd), "--help lists {cmd}");
    }
}
