//! Properties of the rules over generated boards and partitionings: every
//! partitioning built to be valid validates with no diagnostic, and any memory
//! overlap introduced into one is always caught.

use partitioner::diag::{Code, Span, Spanned};
use partitioner::manifest::{Manifest, MemoryRange, Partition};
use partitioner::rules::{self, Context, Images};
use partitioner::tree::{cells_value, number_cells, string_value, Tree, ROOT};
use proptest::prelude::*;

const DRAM_BASE: u64 = 0x4000_0000;
const DRAM_SIZE: u64 = 4 << 30;
const SLOT: u64 = 64 << 20;

struct NoImages;

impl Images for NoImages {
    fn head(&self, path: &str, _: usize) -> Result<(Vec<u8>, u64), String> {
        Err(format!("{path}: no images in this test"))
    }
}

/// A board with `cpus` cores, 4 GiB of DRAM and one UART per core.
fn board(cpus: u32) -> Tree {
    let mut t = Tree::new();
    t.set_prop(ROOT, "#address-cells", cells_value(&[2]));
    t.set_prop(ROOT, "#size-cells", cells_value(&[2]));
    let c = t.add_child(ROOT, "cpus");
    t.set_prop(c, "#address-cells", cells_value(&[1]));
    t.set_prop(c, "#size-cells", cells_value(&[0]));
    for i in 0..cpus {
        let cpu = t.add_child(c, &format!("cpu@{i}"));
        t.set_prop(cpu, "device_type", string_value(&["cpu"]));
        t.set_prop(cpu, "reg", cells_value(&[i]));
    }
    let m = t.add_child(ROOT, "memory@40000000");
    t.set_prop(m, "device_type", string_value(&["memory"]));
    let reg: Vec<u32> = number_cells(DRAM_BASE, 2)
        .into_iter()
        .chain(number_cells(DRAM_SIZE, 2))
        .collect();
    t.set_prop(m, "reg", cells_value(&reg));
    for i in 0..cpus {
        let u = t.add_child(ROOT, &format!("serial@{:x}", 0x900_0000 + i * 0x1000));
        t.set_prop(u, "compatible", string_value(&["arm,pl011"]));
    }
    t
}

fn s<T>(v: T) -> Spanned<T> {
    Spanned::new(v, Span::default())
}

/// Partitions over `cpus` cores: `owners[i]` is the partition of core i, and
/// partition p gets memory slot `slots[p]`.
fn manifest(cpus: u32, owners: &[usize], slots: &[u64]) -> Manifest {
    let count = owners.iter().copied().max().map_or(0, |m| m + 1);
    let partitions = (0..count)
        .map(|p| Partition {
            name: s(format!("p{p}")),
            span: Span::default(),
            cores: s((0..cpus)
                .filter(|&c| owners[c as usize] == p)
                .map(s)
                .collect()),
            boot_core: None,
            memory: vec![MemoryRange {
                base: s(DRAM_BASE + slots[p] * SLOT),
                size: s(SLOT),
                span: Span::default(),
            }],
            devices: vec![s(format!("/serial@{:x}", 0x900_0000 + p as u32 * 0x1000))],
            console: None,
            image: None,
            entry_el: None,
            system_control: None,
        })
        .collect();
    Manifest {
        board: s("generated".into()),
        partitions,
        links: Vec::new(),
    }
}

fn check(tree: &Tree, m: &Manifest) -> Vec<Code> {
    let dram = rules::board_dram(tree);
    let boot_region = rules::boot_region(&dram, 16 << 20);
    let cx = Context {
        tree,
        dram,
        boot_region,
        images: &NoImages,
    };
    rules::validate(m, &cx)
        .1
        .into_iter()
        .map(|d| d.code)
        .collect()
}

/// A valid partitioning: every partition has at least one core, cores are
/// shared out once, memory slots are distinct and below the boot region.
fn partitioning() -> impl Strategy<Value = (u32, Vec<usize>, Vec<u64>)> {
    (1u32..=16).prop_flat_map(|cpus| {
        (1..=cpus.min(8) as usize).prop_flat_map(move |parts| {
            let owners =
                proptest::collection::vec(0..parts, cpus as usize).prop_map(move |mut o| {
                    // Make sure each partition owns a core.
                    for (p, slot) in o.iter_mut().take(parts).enumerate() {
                        *slot = p;
                    }
                    o
                });
            // 63 slots of 64 MiB: the top one is the boot stage's.
            let slots =
                proptest::sample::subsequence((0..DRAM_SIZE / SLOT - 1).collect::<Vec<_>>(), parts)
                    .prop_shuffle();
            (Just(cpus), owners, slots)
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn valid_partitionings_validate((cpus, owners, slots) in partitioning()) {
        let tree = board(cpus);
        let m = manifest(cpus, &owners, &slots);
        prop_assert_eq!(check(&tree, &m), Vec::<Code>::new());
    }

    #[test]
    fn overlaps_are_always_caught(
        (cpus, owners, slots) in partitioning().prop_filter("two partitions", |(_, _, s)| s.len() >= 2),
        victim in any::<prop::sample::Index>(),
        offset in 0u64..SLOT / 0x1000,
    ) {
        let tree = board(cpus);
        let mut m = manifest(cpus, &owners, &slots);
        let n = m.partitions.len();
        let j = victim.index(n);
        let i = (j + 1) % n;
        // Move partition j's memory to start inside partition i's.
        let target = m.partitions[i].memory[0].base.value + offset * 0x1000;
        m.partitions[j].memory[0].base.value = target;
        let codes = check(&tree, &m);
        prop_assert!(codes.contains(&Code::MemoryOverlap), "{codes:?}");
    }

    #[test]
    fn cores_given_twice_are_always_caught((cpus, owners, slots) in partitioning().prop_filter("two partitions", |(_, _, s)| s.len() >= 2)) {
        let tree = board(cpus);
        let mut m = manifest(cpus, &owners, &slots);
        let stolen = m.partitions[0].cores.value[0].clone();
        m.partitions[1].cores.value.push(stolen);
        prop_assert!(check(&tree, &m).contains(&Code::CoreTwice));
    }
}
