//! Generates the rpmsg-lite bindings and links the user's prebuilt library,
//! when `RPMSG_LITE_INCLUDE` and `RPMSG_LITE_LIB` are set and the `bindgen`
//! feature is on; otherwise says why the bindings are skipped. This crate
//! never contains or builds rpmsg-lite itself.

use std::env;
use std::ffi::OsString;

const INCLUDE: &str = "RPMSG_LITE_INCLUDE";
const LIB: &str = "RPMSG_LITE_LIB";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(rpmsg_lite)");
    println!("cargo::rerun-if-env-changed={INCLUDE}");
    println!("cargo::rerun-if-env-changed={LIB}");
    println!("cargo::rerun-if-changed=wrapper.h");
    let (include, lib) = match (env::var_os(INCLUDE), env::var_os(LIB)) {
        (Some(i), Some(l)) if !i.is_empty() && !l.is_empty() => (i, l),
        (i, l) => {
            let missing: Vec<&str> = [(INCLUDE, i), (LIB, l)]
                .into_iter()
                .filter(|(_, v)| v.as_ref().is_none_or(|v| v.is_empty()))
                .map(|(name, _)| name)
                .collect();
            println!(
                "cargo::warning=rpmsg-lite bindings skipped: {} not set. Set {INCLUDE} \
                 (':'-separated: rpmsg-lite's lib/include, the dir with rpmsg_env_specific.h, \
                 the dir with your rpmsg_platform.h and rpmsg_config.h) and {LIB} (the dir \
                 holding librpmsg_lite.a), and build with --features bindgen",
                missing.join(" and ")
            );
            return;
        }
    };
    if env::var_os("CARGO_FEATURE_BINDGEN").is_none() {
        println!(
            "cargo::warning=rpmsg-lite bindings skipped: {INCLUDE} and {LIB} are set but the \
             `bindgen` feature is off; pass --features bindgen (e.g. cargo test -p \
             rpmsg-lite-sys --features bindgen)"
        );
        return;
    }
    generate(include, lib);
}

#[cfg(feature = "bindgen")]
fn generate(include: OsString, lib: OsString) {
    use std::path::PathBuf;

    let lib = PathBuf::from(lib);
    let archive = lib.join("librpmsg_lite.a");
    if !archive.is_file() {
        panic!(
            "{LIB}={} holds no librpmsg_lite.a; build rpmsg-lite (see this crate's README) \
             or point {LIB} at the folder that holds it",
            lib.display()
        );
    }
    println!("cargo::rerun-if-changed={}", archive.display());
    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        .use_core()
        .ctypes_prefix("core::ffi")
        // The public API (rpmsg_lite.h, rpmsg_ns.h, rpmsg_queue.h), its types
        // and constants, and the one virtqueue entry an environment layer's
        // interrupt handler calls.
        .allowlist_function("rpmsg_.*")
        .allowlist_function("virtqueue_notification")
        .allowlist_type("rpmsg_.*|rl_.*")
        .allowlist_var("RL_.*|VRING_.*")
        .derive_default(true)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for dir in env::split_paths(&include) {
        if !dir.is_dir() {
            panic!(
                "{INCLUDE} names {}, which is not a directory",
                dir.display()
            );
        }
        builder = builder.clang_arg(format!("-I{}", dir.display()));
    }
    let bindings = builder.generate().unwrap_or_else(|e| {
        panic!(
            "bindgen could not read the rpmsg-lite headers ({e}); {INCLUDE} must name \
             rpmsg-lite's lib/include, the environment dir with rpmsg_env_specific.h \
             (e.g. lib/include/environment/bm) and the dir with rpmsg_platform.h and \
             rpmsg_config.h"
        )
    });
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings.rs");
    println!("cargo::rustc-link-search=native={}", lib.display());
    println!("cargo::rustc-link-lib=static=rpmsg_lite");
    println!("cargo::rustc-cfg=rpmsg_lite");
}

#[cfg(not(feature = "bindgen"))]
fn generate(_include: OsString, _lib: OsString) {
    unreachable!("only called with the bindgen feature");
}
