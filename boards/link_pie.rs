// Shared by the build scripts of the project's bare-metal programs (the boot
// stage, the demo RTOS), through `include!`: every one is linked at 0 with its
// crate's `link.ld` as a position-independent executable and applies its own
// relative fixups at start (boards/src/rt.s, `amp_relocate`).

/// Emits the link arguments for a bare-metal build; does nothing on the host.
fn link_position_independent() {
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
