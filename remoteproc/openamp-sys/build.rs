//! Generates the OpenAMP and libmetal bindings and links the user's prebuilt
//! libraries, when `OPENAMP_INCLUDE` and `OPENAMP_LIB` are set and the
//! `bindgen` feature is on; otherwise says why the bindings are skipped. This
//! crate never contains or builds OpenAMP or libmetal itself.

use std::env;
use std::ffi::OsString;

const INCLUDE: &str = "OPENAMP_INCLUDE";
const LIB: &str = "OPENAMP_LIB";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(openamp)");
    println!("cargo::rerun-if-env-changed={INCLUDE}");
    println!("cargo::rerun-if-env-changed={LIB}");
    println!("cargo::rerun-if-changed=wrapper.h");
    println!("cargo::rerun-if-changed=shim.h");
    println!("cargo::rerun-if-changed=shim.c");
    let (include, lib) = match (env::var_os(INCLUDE), env::var_os(LIB)) {
        (Some(i), Some(l)) if !i.is_empty() && !l.is_empty() => (i, l),
        (i, l) => {
            let missing: Vec<&str> = [(INCLUDE, i), (LIB, l)]
                .into_iter()
                .filter(|(_, v)| v.as_ref().is_none_or(|v| v.is_empty()))
                .map(|(name, _)| name)
                .collect();
            println!(
                "cargo::warning=OpenAMP bindings skipped (the interop test is ignored, the \
                 bench prints SKIPPED): {} not set. Set {INCLUDE} (':'-separated: the include \
                 dirs of your installed open-amp and libmetal, holding openamp/ and metal/) \
                 and {LIB} (':'-separated: the dirs holding libopen_amp.a and libmetal.a), \
                 and build with --features bindgen",
                missing.join(" and ")
            );
            return;
        }
    };
    if env::var_os("CARGO_FEATURE_BINDGEN").is_none() {
        println!(
            "cargo::warning=OpenAMP bindings skipped: {INCLUDE} and {LIB} are set but the \
             `bindgen` feature is off; pass --features bindgen (e.g. cargo test -p \
             openamp-sys --features bindgen)"
        );
        return;
    }
    generate(include, lib);
}

#[cfg(feature = "bindgen")]
fn generate(include: OsString, lib: OsString) {
    use std::path::PathBuf;

    let dirs: Vec<PathBuf> = env::split_paths(&include).collect();
    for dir in &dirs {
        if !dir.is_dir() {
            panic!(
                "{INCLUDE} names {}, which is not a directory",
                dir.display()
            );
        }
    }
    let libs: Vec<PathBuf> = env::split_paths(&lib).collect();
    for name in ["libopen_amp.a", "libmetal.a"] {
        match libs.iter().map(|d| d.join(name)).find(|p| p.is_file()) {
            Some(archive) => println!("cargo::rerun-if-changed={}", archive.display()),
            None => panic!(
                "{LIB}={} holds no {name}; build and install open-amp and libmetal as static \
                 libraries (see this crate's README) or point {LIB} at the folders that hold them",
                env::join_paths(&libs).unwrap_or_default().display()
            ),
        }
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        .use_core()
        .ctypes_prefix("core::ffi")
        .clang_arg(format!("-I{}", manifest.display()))
        // OpenAMP: the rpmsg API (rpmsg.h, rpmsg_virtio.h), the remoteproc
        // virtio device (remoteproc_virtio.h), the virtio and virtqueue
        // types they use, and the resource-table layout (remoteproc.h).
        .allowlist_function("rpmsg_.*|rproc_virtio_.*|virtqueue_notification")
        // libmetal: init, logging, I/O regions.
        .allowlist_function("metal_init|metal_finish|metal_default_log_handler|metal_io_init")
        // Our shim of the static-inline calls (re-exported by src/lib.rs).
        .allowlist_function("openamp_sys_.*")
        .allowlist_type("rpmsg_.*|remoteproc_virtio|fw_rsc_.*|fw_resource_type|resource_table")
        .allowlist_type("virtio_.*|virtqueue|vring.*|metal_io_region|metal_init_params")
        .allowlist_type("metal_log_level")
        .allowlist_var("RPMSG_.*|RSC_.*|VIRTIO_.*|VRING_.*|RPROC_.*|METAL_.*")
        .derive_default(true)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for dir in &dirs {
        builder = builder.clang_arg(format!("-I{}", dir.display()));
    }
    let bindings = builder.generate().unwrap_or_else(|e| {
        panic!(
            "bindgen could not read the OpenAMP headers ({e}); {INCLUDE} must name the \
             include dirs of your installed open-amp and libmetal (the dirs holding \
             openamp/open_amp.h and metal/sys.h)"
        )
    });
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings.rs");
    // The shim, compiled against the same headers.
    let mut cc = cc::Build::new();
    cc.file(manifest.join("shim.c")).include(&manifest);
    for dir in &dirs {
        cc.include(dir);
    }
    cc.compile("openamp_sys_shim");
    for dir in &libs {
        println!("cargo::rustc-link-search=native={}", dir.display());
    }
    println!("cargo::rustc-link-lib=static=open_amp");
    println!("cargo::rustc-link-lib=static=metal");
    // libmetal's Linux build uses libsysfs (device buses) and pthreads.
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo::rustc-link-lib=sysfs");
        println!("cargo::rustc-link-lib=pthread");
    }
    println!("cargo::rustc-cfg=openamp");
}

#[cfg(not(feature = "bindgen"))]
fn generate(_include: OsString, _lib: OsString) {
    unreachable!("only called with the bindgen feature");
}
