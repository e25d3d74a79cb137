//! Declares the `loom` cfg so `--cfg loom` model-check builds are not flagged as
//! an unexpected cfg (the crate's lints come from the workspace and cannot list it).
fn main() {
    println!("cargo::rustc-check-cfg=cfg(loom)");
}
