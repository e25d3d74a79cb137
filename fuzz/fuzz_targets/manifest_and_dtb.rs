//! Manifest text and device-tree bytes from the fuzzer: reading, validating,
//! planning, writing partition trees and round-tripping the plan must never
//! panic, hang or grow without bound, whatever the input.
//!
//! Input layout: two bytes (little-endian) give the manifest's length; the
//! manifest text follows, then the device tree blob.
#![no_main]

use libfuzzer_sys::fuzz_target;
use amp_plan::dt::DeviceTree;
use partitioner::rules::{self, Context, Images};
use partitioner::tree::Tree;

/// Every image is a small blob that looks like an arm64 Image for some paths
/// and like garbage for others, so the image rules run too.
struct FakeImages;

impl Images for FakeImages {
    fn head(&self, path: &str, max: usize) -> Result<(Vec<u8>, u64), String> {
        let mut head = vec![0u8; 0x40.min(max)];
        if path.len() % 2 == 0 && head.len() == 0x40 {
            head[0x38..0x3c].copy_from_slice(b"ARM\x64");
            head[16..24].copy_from_slice(&(path.len() as u64 * 0x10_0000).to_le_bytes());
        }
        if path.is_empty() {
            return Err("empty".into());
        }
        Ok((head, 0x40))
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let split = usize::from(u16::from_le_bytes([data[0], data[1]])).min(data.len() - 2);
    let (text, blob) = data[2..].split_at(split);
    let text = String::from_utf8_lossy(text);

    // The borrowing reader the boot stage uses.
    if let Ok(dt) = DeviceTree::new(blob) {
        let _ = (dt.cpus().count(), dt.memory().count(), dt.psci_method(), dt.model());
        let _ = dt.stdout().map(|s| (s.reg(), s.compatible()));
        let _ = dt.interrupt_controller().map(|s| s.reg());
    }

    let (manifest, _diags) = partitioner::parse::parse(&text);
    let Ok(tree) = Tree::parse(blob) else { return };
    let Some(manifest) = manifest else { return };
    let dram = rules::board_dram(&tree);
    let boot_region = rules::boot_region(&dram, 16 << 20);
    let cx = Context { tree: &tree, dram, boot_region, images: &FakeImages };
    let (resolved, diags) = rules::validate(&manifest, &cx);
    if !diags.is_empty() {
        return;
    }
    let Ok(plan) = partitioner::plan::plan(&manifest, &tree, &resolved, boot_region) else { return };
    let bytes = amp_plan::format::encode(&plan);
    assert_eq!(amp_plan::format::decode(&bytes).as_ref(), Ok(&plan));
    for index in 0..plan.partitions.len() {
        let out = partitioner::dtgen::partition_tree(&tree, &plan, index).to_blob();
        // What we write, we can read back.
        assert!(Tree::parse(&out).is_ok(), "generated tree does not parse");
    }
});
