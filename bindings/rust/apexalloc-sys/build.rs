//! Compiles ApexAlloc's C core into a static library with the `cc` crate: no CMake, no
//! pre-installed library and no libclang needed.
//!
//! The list of translation units is read from `c/core/sources.txt` at build time (the one list
//! the CMake build and every binding share), so a file added to the core reaches this crate
//! without touching it. `c/core` and `c/include` are symlinks to the repository's `core/` and
//! `include/`; in a packaged crate they are real directories.
//!
//! Flags: the core's release flags (`-std=c11 -O2 -g`, whatever Cargo's profile), and
//! - default: the embeddable form (`APEX_EMBED=1`: the `apex_*` entry points have hidden
//!   visibility, so they never bind to another copy such as a preloaded libapexalloc.so;
//!   `APEX_EMBED_TLS=1`: global-dynamic TLS, safe in a `cdylib` loaded with `dlopen`);
//! - feature `override`: `APEX_OVERRIDE=1` (alloc.c then includes override.c, which defines
//!   `malloc`, `free`, ... with default visibility) and initial-exec TLS, like libapexalloc.so;
//!   not `APEX_EMBED`, since the whole point is that the C library's callers reach this copy;
//! - feature `debug`: `APEX_DEBUG=1`, the internal consistency checks.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let core = manifest.join("c").join("core");
    let include = manifest.join("c").join("include");
    let list = core.join("sources.txt");
    let text = fs::read_to_string(&list)
        .unwrap_or_else(|e| panic!("apexalloc-sys: cannot read {}: {e}", list.display()));

    let override_malloc = env::var_os("CARGO_FEATURE_OVERRIDE").is_some();
    let debug_checks = env::var_os("CARGO_FEATURE_DEBUG").is_some();

    let mut build = cc::Build::new();
    build
        .include(&include)
        .include(&core)
        .opt_level(2)
        .debug(true)
        .pic(true)
        .warnings(true)
        .extra_warnings(true)
        .flag("-std=c11")
        .flag("-pthread")
        .flag("-fvisibility=hidden")
        .flag("-fno-semantic-interposition")
        .flag("-fno-builtin-malloc")
        .flag("-fno-builtin-free");
    if override_malloc {
        build.define("APEX_OVERRIDE", "1").flag("-ftls-model=initial-exec");
    } else {
        build
            .define("APEX_EMBED", "1")
            .define("APEX_EMBED_TLS", "1")
            .flag("-ftls-model=global-dynamic");
    }
    if debug_checks {
        build.define("APEX_DEBUG", "1");
    }

    let mut count = 0;
    for name in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let file = core.join(name);
        println!("cargo:rerun-if-changed={}", file.display());
        build.file(file);
        count += 1;
    }
    assert!(count > 0, "apexalloc-sys: {} lists no source", list.display());

    // Headers and files included by a listed source (override.c by alloc.c).
    for entry in fs::read_dir(&core).expect("c/core") {
        let path = entry.expect("c/core entry").path();
        if path.extension().is_some_and(|e| e == "h" || e == "c") {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    println!("cargo:rerun-if-changed={}", list.display());
    println!("cargo:rerun-if-changed={}", include.join("apexalloc.h").display());
    println!("cargo:rerun-if-changed=build.rs");

    build.compile("apexalloc");
    println!("cargo:rustc-link-lib=pthread");
    // For dependent crates' build scripts (DEP_APEXALLOC_INCLUDE).
    println!("cargo:include={}", include.display());
}
