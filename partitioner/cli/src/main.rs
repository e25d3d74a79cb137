//! `amp`: the integrators' tool. Checks a partitioning manifest against the
//! board's real device tree, shows the partitioning, prints the resolved plan,
//! writes the boot plan and each partition's device tree.
#![forbid(unsafe_code)]

mod render;
mod show;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use partitioner::diag::{suggest, Code, Diagnostic};
use partitioner::host::{pack_firmware, validate_and_plan, DirImages};
use partitioner::manifest::Manifest;
use partitioner::plan::Plan;
use partitioner::rules::{self, Resolved};
use partitioner::tree::Tree;

/// Check, show and build AMP partitionings: which cores, memory and devices each
/// OS gets on a multi-core Arm board, and the shared-memory links between them.
#[derive(Parser)]
#[command(name = "amp", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options every command shares.
#[derive(clap::Args)]
struct Input {
    /// The manifest (TOML) to read.
    manifest: PathBuf,
    /// The board's device tree blob. Default: the board's own (Debian's DTB for
    /// real boards, fetched by `cargo xtask setup`; QEMU's for qemu-virt).
    #[arg(long, value_name = "FILE")]
    dtb: Option<PathBuf>,
    /// Folder that image paths in the manifest are relative to. Default: the
    /// manifest's folder.
    #[arg(long, value_name = "DIR")]
    images: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a manifest against the board; exit 0 if valid, 1 if not.
    Check {
        #[command(flatten)]
        input: Input,
        /// Output format of the diagnostics.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Print the resolved layout; with -o, also write the binary boot plan.
    Plan {
        #[command(flatten)]
        input: Input,
        /// Write the encoded boot plan here.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Write the device tree a partition boots with.
    Dtb {
        #[command(flatten)]
        input: Input,
        /// The partition's name.
        partition: String,
        /// Write the blob here.
        #[arg(short, long, value_name = "FILE", required_unless_present = "dts")]
        output: Option<PathBuf>,
        /// Print the tree as source (needs `dtc`).
        #[arg(long)]
        dts: bool,
    },
    /// Pack one firmware image: the boot stage, the boot plan and every
    /// partition's image and initrd.
    Pack {
        #[command(flatten)]
        input: Input,
        /// The boot stage (`cargo xtask build` writes it).
        #[arg(long, value_name = "FILE", default_value = "target/firmware/boot.bin")]
        boot: PathBuf,
        /// Write the packed image here.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Picture the partitioning: cores, memory map to scale, device ownership.
    Show {
        #[command(flatten)]
        input: Input,
        /// Also write the picture as an SVG file.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
}

/// How `check` prints diagnostics.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Source excerpts with the problem underlined.
    Human,
    /// One JSON object: diagnostics with code, message, file, line, column.
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// A manifest with everything validation found.
pub(crate) struct Loaded {
    pub(crate) path: PathBuf,
    pub(crate) source: String,
    pub(crate) manifest: Option<Manifest>,
    pub(crate) tree: Option<Tree>,
    pub(crate) resolved: Resolved,
    pub(crate) boot_region: Option<(u64, u64)>,
    pub(crate) diags: Vec<Diagnostic>,
    /// The plan, when the manifest is valid.
    pub(crate) plan: Option<Plan>,
}

/// Where image paths are relative to: `--images`, or the manifest's folder.
fn images_dir(input: &Input) -> PathBuf {
    input.images.clone().unwrap_or_else(|| {
        input
            .manifest
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    })
}

fn load(input: &Input) -> Result<Loaded, String> {
    let source = std::fs::read_to_string(&input.manifest)
        .map_err(|e| format!("cannot read {}: {e}", input.manifest.display()))?;
    let (manifest, mut diags) = partitioner::parse::parse(&source);
    let mut loaded = Loaded {
        path: input.manifest.clone(),
        source,
        manifest: None,
        tree: None,
        resolved: Resolved::default(),
        boot_region: None,
        diags: Vec::new(),
        plan: None,
    };
    let Some(manifest) = manifest else {
        loaded.diags = diags;
        return Ok(loaded);
    };
    let Some(board) = boards::Board::by_name(&manifest.board.value) else {
        let names = boards::BOARDS.iter().map(|b| b.name);
        let help = match suggest(&manifest.board.value, names.clone()) {
            Some(s) => format!("did you mean \"{s}\"?"),
            None => format!("supported boards: {}", names.collect::<Vec<_>>().join(", ")),
        };
        diags.push(Diagnostic::new(
            Code::UnknownBoard,
            manifest.board.span,
            format!("board \"{}\" is not supported", manifest.board.value),
            help,
        ));
        loaded.diags = diags;
        loaded.manifest = Some(manifest);
        return Ok(loaded);
    };
    let dtb_path = match &input.dtb {
        Some(p) => p.clone(),
        None => boards::host::board_dtb(board)?,
    };
    let blob =
        std::fs::read(&dtb_path).map_err(|e| format!("cannot read {}: {e}", dtb_path.display()))?;
    let tree = Tree::parse(&blob).map_err(|e| format!("{}: {}", dtb_path.display(), e.as_str()))?;
    let images_dir = input.images.clone().unwrap_or_else(|| {
        input
            .manifest
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    });
    let dram = board.dram(&rules::board_dram(&tree)).to_vec();
    let boot_region = rules::boot_region(&dram, board.boot_region_size);
    let images = DirImages(images_dir);
    let (resolved, plan, found) = validate_and_plan(&manifest, &tree, dram, boot_region, &images);
    diags.extend(found);
    loaded.plan = plan;
    diags.sort_by_key(|d| (d.span.start, d.code));
    loaded.diags = diags;
    loaded.manifest = Some(manifest);
    loaded.tree = Some(tree);
    loaded.resolved = resolved;
    loaded.boot_region = boot_region;
    Ok(loaded)
}

/// Loads, and on any diagnostic prints them and returns exit code 1.
fn load_valid(input: &Input) -> Result<Result<(Loaded, Plan), ExitCode>, String> {
    let mut loaded = load(input)?;
    match loaded.plan.take() {
        Some(plan) if loaded.diags.is_empty() => Ok(Ok((loaded, plan))),
        _ => {
            eprint!("{}", render::human(&loaded));
            Ok(Err(ExitCode::from(1)))
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Check { input, format } => {
            let loaded = load(&input)?;
            match format {
                Format::Human if loaded.diags.is_empty() => {
                    let m = loaded.manifest.as_ref().ok_or("manifest did not load")?;
                    println!(
                        "ok: {}: {} partition(s), {} link(s) on {}",
                        loaded.path.display(),
                        m.partitions.len(),
                        m.links.len(),
                        m.board.value
                    );
                }
                Format::Human => eprint!("{}", render::human(&loaded)),
                Format::Json => println!("{}", render::json(&loaded)),
            }
            Ok(if loaded.diags.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Plan { input, output } => {
            let (loaded, plan) = match load_valid(&input)? {
                Ok(v) => v,
                Err(code) => return Ok(code),
            };
            print!("{}", show::plan_text(&plan, loaded.boot_region));
            if let Some(out) = output {
                let bytes = amp_plan::format::encode(&plan);
                std::fs::write(&out, &bytes)
                    .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
                println!(
                    "wrote {} ({} bytes, format version {})",
                    out.display(),
                    bytes.len(),
                    amp_plan::format::FORMAT_VERSION
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Dtb {
            input,
            partition,
            output,
            dts,
        } => {
            let (loaded, plan) = match load_valid(&input)? {
                Ok(v) => v,
                Err(code) => return Ok(code),
            };
            let Some(index) = plan.partitions.iter().position(|p| p.name == partition) else {
                let names: Vec<&str> = plan.partitions.iter().map(|p| p.name.as_str()).collect();
                return Err(format!(
                    "no partition `{partition}`; the manifest has: {}",
                    names.join(", ")
                ));
            };
            let tree = loaded.tree.as_ref().ok_or("no tree")?;
            let blob = partitioner::dtgen::partition_tree(tree, &plan, index).to_blob();
            if let Some(out) = &output {
                std::fs::write(out, &blob)
                    .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
                eprintln!("wrote {} ({} bytes)", out.display(), blob.len());
            }
            if dts {
                print!("{}", to_dts(&blob)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Pack {
            input,
            boot,
            output,
        } => {
            let (_, plan) = match load_valid(&input)? {
                Ok(v) => v,
                Err(code) => return Ok(code),
            };
            let boot_stage = std::fs::read(&boot).map_err(|e| {
                format!(
                    "cannot read the boot stage {}: {e} (build it with `cargo xtask build`)",
                    boot.display()
                )
            })?;
            let packed = pack_firmware(&boot_stage, &plan, &images_dir(&input))?;
            std::fs::write(&output, &packed)
                .map_err(|e| format!("cannot write {}: {e}", output.display()))?;
            println!(
                "wrote {} ({} bytes, boot stage {} bytes)",
                output.display(),
                packed.len(),
                boot_stage.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { input, svg } => {
            let (loaded, plan) = match load_valid(&input)? {
                Ok(v) => v,
                Err(code) => return Ok(code),
            };
            print!("{}", show::terminal(&loaded, &plan));
            if let Some(out) = svg {
                std::fs::write(&out, show::svg(&loaded, &plan))
                    .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
                println!("wrote {}", out.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Device-tree source of a blob, through `dtc`.
fn to_dts(blob: &[u8]) -> Result<String, String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("dtc")
        .args(["-q", "-I", "dtb", "-O", "dts", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("--dts needs dtc (package device-tree-compiler): {e}"))?;
    child
        .stdin
        .take()
        .ok_or("dtc stdin")?
        .write_all(blob)
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("dtc rejected the generated tree ({})", out.status));
    }
    String::from_utf8(out.stdout).map_err(|e| e.to_string())
}
