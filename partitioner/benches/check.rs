//! How `check` scales: a generated board with 64 cores, a GIC, a clock
//! controller and N devices, and a manifest splitting it into 32 partitions
//! that own all N devices. Times parse + validate + plan (median of repeated
//! runs) for N from 200 to 2,000 and reports the growth against N.
//!
//! Run with `cargo bench -p partitioner --bench check`.

use std::time::{Duration, Instant};

use partitioner::rules::{self, Context, Images};
use partitioner::tree::{cells_value, number_cells, string_value, Tree, ROOT};

const CORES: u32 = 64;
const PARTITIONS: u32 = 32;

struct NoImages;

impl Images for NoImages {
    fn head(&self, path: &str, _: usize) -> Result<(Vec<u8>, u64), String> {
        Err(format!("{path}: none"))
    }
}

fn board(devices: u32) -> Vec<u8> {
    let mut t = Tree::new();
    t.set_prop(ROOT, "#address-cells", cells_value(&[2]));
    t.set_prop(ROOT, "#size-cells", cells_value(&[2]));
    t.set_prop(ROOT, "interrupt-parent", cells_value(&[1]));
    let cpus = t.add_child(ROOT, "cpus");
    t.set_prop(cpus, "#address-cells", cells_value(&[1]));
    t.set_prop(cpus, "#size-cells", cells_value(&[0]));
    for i in 0..CORES {
        let c = t.add_child(cpus, &format!("cpu@{i}"));
        t.set_prop(c, "device_type", string_value(&["cpu"]));
        t.set_prop(c, "reg", cells_value(&[i]));
    }
    let m = t.add_child(ROOT, "memory@40000000");
    t.set_prop(m, "device_type", string_value(&["memory"]));
    let reg: Vec<u32> = number_cells(0x4000_0000, 2)
        .into_iter()
        .chain(number_cells(8 << 30, 2))
        .collect();
    t.set_prop(m, "reg", cells_value(&reg));
    let gic = t.add_child(ROOT, "interrupt-controller@8000000");
    t.set_prop(gic, "compatible", string_value(&["arm,gic-v3"]));
    t.set_prop(gic, "interrupt-controller", Vec::new());
    t.set_prop(gic, "#interrupt-cells", cells_value(&[3]));
    t.set_prop(gic, "phandle", cells_value(&[1]));
    let clk = t.add_child(ROOT, "clock-controller@8100000");
    t.set_prop(clk, "#clock-cells", cells_value(&[1]));
    t.set_prop(clk, "phandle", cells_value(&[2]));
    let soc = t.add_child(ROOT, "soc");
    t.set_prop(soc, "#address-cells", cells_value(&[1]));
    t.set_prop(soc, "#size-cells", cells_value(&[1]));
    t.set_prop(soc, "ranges", Vec::new());
    for i in 0..devices {
        let d = t.add_child(soc, &format!("device@{:x}", 0x1000_0000 + i * 0x1000));
        t.set_prop(d, "compatible", string_value(&["acme,device"]));
        t.set_prop(d, "reg", cells_value(&[0x1000_0000 + i * 0x1000, 0x1000]));
        t.set_prop(d, "interrupts", cells_value(&[0, i, 4]));
        t.set_prop(d, "clocks", cells_value(&[2, i]));
    }
    t.to_blob()
}

fn manifest(devices: u32) -> String {
    let mut text = String::from("board = \"generated\"\n");
    for p in 0..PARTITIONS {
        let cores = format!("[{}, {}]", 2 * p, 2 * p + 1);
        let list: Vec<String> = (0..devices)
            .filter(|i| i % PARTITIONS == p)
            .map(|i| format!("\"/soc/device@{:x}\"", 0x1000_0000 + i * 0x1000))
            .collect();
        text += &format!(
            "\n[[partition]]\nname = \"p{p}\"\ncores = {cores}\nmemory = [{{ base = {:#x}, size = \"64M\" }}]\ndevices = [{}]\n",
            0x4000_0000u64 + u64::from(p) * (64 << 20),
            list.join(", ")
        );
    }
    for p in 0..PARTITIONS - 1 {
        text += &format!("\n[[link]]\nname = \"l{p}\"\nbetween = [\"p{p}\", \"p{}\"]\nshmem = {{ size = \"1M\" }}\n", p + 1);
    }
    text
}

fn check(text: &str, blob: &[u8]) -> usize {
    let tree = Tree::parse(blob).expect("generated tree parses");
    let (m, mut diags) = partitioner::parse::parse(text);
    let m = m.expect("generated manifest parses");
    let dram = rules::board_dram(&tree);
    let boot_region = rules::boot_region(&dram, 16 << 20);
    let cx = Context {
        tree: &tree,
        dram,
        boot_region,
        images: &NoImages,
    };
    let (resolved, found) = rules::validate(&m, &cx);
    diags.extend(found);
    assert!(
        diags.is_empty(),
        "generated manifest must be valid: {:?}",
        &diags[..diags.len().min(3)]
    );
    let plan = partitioner::plan::plan(&m, &tree, &resolved, boot_region).expect("plan");
    plan.partitions.len()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    println!("check of a 64-core, 32-partition manifest (parse + validate + plan), median of runs");
    println!(
        "{:>8} {:>8} {:>12} {:>14} {:>16}",
        "devices", "runs", "median", "per device", "time / (N/200)"
    );
    let mut base = None;
    for devices in [200u32, 500, 1000, 2000] {
        let (text, blob) = (manifest(devices), board(devices));
        let runs = 15;
        let times: Vec<Duration> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(check(&text, &blob));
                t.elapsed()
            })
            .collect();
        let m = median(times);
        let per = m / devices;
        let base_per = *base.get_or_insert(per);
        println!(
            "{devices:>8} {runs:>8} {:>10.2} ms {:>11.1} us {:>15.2}x",
            m.as_secs_f64() * 1e3,
            per.as_secs_f64() * 1e6,
            per.as_secs_f64() / base_per.as_secs_f64()
        );
    }
    println!("(last column: time per device relative to N = 200; 1.0 means linear growth)");
}
