//! Host-side steps shared by the integrators' tool and the tests: images read
//! from a folder, validation followed by planning, and packing a firmware image.

use std::path::PathBuf;

use crate::diag::Diagnostic;
use crate::manifest::Manifest;
use crate::plan::Plan;
use crate::rules::{self, Context, Images, Resolved};
use crate::tree::Tree;
use amp_plan::pack::{self, EntryKind};

/// Image files in a folder.
pub struct DirImages(pub PathBuf);

impl Images for DirImages {
    fn head(&self, path: &str, max: usize) -> Result<(Vec<u8>, u64), String> {
        use std::io::Read;
        let full = self.0.join(path);
        let file = std::fs::File::open(&full).map_err(|e| format!("{} ({e})", full.display()))?;
        let len = file
            .metadata()
            .map_err(|e| format!("{}: {e}", full.display()))?
            .len();
        let mut head = Vec::new();
        file.take(max as u64)
            .read_to_end(&mut head)
            .map_err(|e| format!("{}: {e}", full.display()))?;
        Ok((head, len))
    }
}

/// Runs every rule, then (if none fired) the planner, whose failure to place a
/// window is one more diagnostic.
pub fn validate_and_plan(
    manifest: &Manifest,
    tree: &Tree,
    dram: Vec<(u64, u64)>,
    boot_region: Option<(u64, u64)>,
    images: &dyn Images,
) -> (Resolved, Option<Plan>, Vec<Diagnostic>) {
    let cx = Context {
        tree,
        dram,
        boot_region,
        images,
    };
    let (resolved, mut diags) = rules::validate(manifest, &cx);
    let mut plan = None;
    if diags.is_empty() {
        match crate::plan::plan(manifest, tree, &resolved, boot_region) {
            Ok(p) => plan = Some(p),
            Err(d) => diags.push(d),
        }
    }
    (resolved, plan, diags)
}

/// One firmware image: the boot stage, the encoded plan and every partition's
/// image and initrd, read from `images`.
pub fn pack_firmware(
    boot_stage: &[u8],
    plan: &Plan,
    images: &std::path::Path,
) -> Result<Vec<u8>, String> {
    let read = |path: &str| {
        let full = images.join(path);
        std::fs::read(&full).map_err(|e| format!("cannot read {}: {e}", full.display()))
    };
    let mut files: Vec<(EntryKind, u32, Vec<u8>)> =
        vec![(EntryKind::Plan, 0, amp_plan::format::encode(plan))];
    for (index, p) in plan.partitions.iter().enumerate() {
        if let Some(image) = &p.image {
            files.push((EntryKind::Image, index as u32, read(&image.path)?));
            if let Some((initrd, _, _)) = &image.initrd {
                files.push((EntryKind::Initrd, index as u32, read(initrd)?));
            }
        }
    }
    let payloads: Vec<(EntryKind, u32, &[u8])> = files
        .iter()
        .map(|(k, p, b)| (*k, *p, b.as_slice()))
        .collect();
    pack::pack(boot_stage, &payloads).map_err(|e| e.as_str().to_string())
}
