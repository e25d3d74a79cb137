//! Links the demo RTOS as a position-independent ELF the boot stage places at
//! its partition's first memory range (see `link.ld`).

fn main() {
    println!("cargo:rerun-if-changed=link.ld");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        for arg in [
            format!("-T{dir}/link.ld"),
            "--pie".into(),
            "--no-dynamic-linker".into(),
            "-znotext".into(),
        ] {
            println!("cargo:rustc-link-arg-bins={arg}");
        }
    }
}
