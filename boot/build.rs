//! Links the bare-metal boot stage with its own script, as a position-independent
//! image that relocates itself (see `src/start.s`).

fn main() {
    println!("cargo:rerun-if-changed=link.ld");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        for arg in [
            format!("-T{dir}/link.ld"),
            "--pie".into(),
            "--no-dynamic-linker".into(),
            // A prebuilt `core` (rustup's target) has absolute addresses in
            // read-only data; they become run-time fixups like any other.
            "-znotext".into(),
        ] {
            println!("cargo:rustc-link-arg-bins={arg}");
        }
    }
}
