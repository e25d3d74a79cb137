//! Reads device-tree facts with `fdtget` (from the `device-tree-compiler`
//! package): an implementation independent of the firmware's own reader.

use std::path::Path;
use std::process::Command;

/// Rewrites `raw` into `out` through `dtc`, dropping the `FDT_NOP` tokens QEMU
/// leaves where it deletes nodes: `fdtget -l` lists such a tree but then exits
/// with an error.
pub fn normalise(raw: &Path, out: &Path) -> std::io::Result<()> {
    let status = Command::new("dtc")
        .args(["-q", "-I", "dtb", "-O", "dtb", "-o"])
        .arg(out)
        .arg(raw)
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "dtc could not read {}: {status}",
            raw.display()
        )))
    }
}

/// Runs `fdtget OPTIONS DTB NODE [PROP]`.
fn fdtget(dtb: &Path, options: &[&str], node: &str, prop: Option<&str>) -> Option<String> {
    let out = Command::new("fdtget")
        .args(options)
        .arg(dtb)
        .arg(node)
        .args(prop)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Property `prop` of `node` as 32-bit cells.
pub fn cells(dtb: &Path, node: &str, prop: &str) -> Option<Vec<u64>> {
    let text = fdtget(dtb, &["-t", "u"], node, Some(prop))?;
    text.split_whitespace().map(|c| c.parse().ok()).collect()
}

/// Property `prop` of `node` as a string.
pub fn string(dtb: &Path, node: &str, prop: &str) -> Option<String> {
    fdtget(dtb, &["-t", "s"], node, Some(prop))
}

/// Names of the subnodes of `node`.
pub fn subnodes(dtb: &Path, node: &str) -> Vec<String> {
    fdtget(dtb, &["-l"], node, None)
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Joins big-endian cells into numbers of `width` cells each.
pub fn numbers(cells: &[u64], width: usize) -> Vec<u64> {
    cells
        .chunks(width.max(1))
        .map(|c| c.iter().fold(0, |acc, v| (acc << 32) | v))
        .collect()
}

/// The `reg` value of every CPU node under `/cpus`: their MPIDRs.
pub fn cpu_mpidrs(dtb: &Path) -> Vec<u64> {
    let ac = cells(dtb, "/cpus", "#address-cells").map_or(2, |c| c[0] as usize);
    cpu_nodes(dtb)
        .iter()
        .filter_map(|n| cells(dtb, n, "reg").map(|c| numbers(&c, ac)[0]))
        .collect()
}

/// `(base, size)` of every range of the root's memory nodes.
pub fn memory_ranges(dtb: &Path) -> Vec<(u64, u64)> {
    let ac = cells(dtb, "/", "#address-cells").map_or(2, |c| c[0] as usize);
    let sc = cells(dtb, "/", "#size-cells").map_or(1, |c| c[0] as usize);
    subnodes(dtb, "/")
        .iter()
        .map(|n| format!("/{n}"))
        .filter(|n| string(dtb, n, "device_type").as_deref() == Some("memory"))
        .flat_map(|n| cells(dtb, &n, "reg").unwrap_or_default())
        .collect::<Vec<_>>()
        .chunks(ac + sc)
        .filter(|c| c.len() == ac + sc)
        .map(|c| (numbers(&c[..ac], ac)[0], numbers(&c[ac..], sc)[0]))
        .collect()
}

/// The node path `/chosen/stdout-path` names, aliases resolved and options dropped.
pub fn stdout_path(dtb: &Path) -> Option<String> {
    let raw = string(dtb, "/chosen", "stdout-path")?;
    let path = raw.split(':').next()?.to_string();
    if path.starts_with('/') {
        Some(path)
    } else {
        string(dtb, "/aliases", &path)
    }
}

/// Paths of the CPU nodes under `/cpus`, in tree order.
pub fn cpu_nodes(dtb: &Path) -> Vec<String> {
    subnodes(dtb, "/cpus")
        .iter()
        .map(|n| format!("/cpus/{n}"))
        .filter(|n| string(dtb, n, "device_type").as_deref() == Some("cpu"))
        .collect()
}

/// Whether the node at `path` is the root's interrupt parent.
pub fn is_root_interrupt_parent(dtb: &Path, path: &str) -> bool {
    let parent = cells(dtb, "/", "interrupt-parent");
    parent.is_some() && parent == cells(dtb, path, "phandle")
}
