//! `cargo run -p apexalloc-sys-gen` rewrites apexalloc-sys/src/bindings.rs from the header;
//! `cargo run -p apexalloc-sys-gen -- --check` only compares and exits 1 on a difference.

use std::process::ExitCode;

fn main() -> ExitCode {
    let check = std::env::args().any(|a| a == "--check");
    let header = apexalloc_sys_gen::header_path();
    let out = apexalloc_sys_gen::bindings_path();
    let fresh = match apexalloc_sys_gen::generate(&header) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("apexalloc-sys-gen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let old = std::fs::read_to_string(&out).unwrap_or_default();
    if check {
        if old == fresh {
            println!("{} matches {}", out.display(), header.display());
            return ExitCode::SUCCESS;
        }
        eprintln!("{} differs from what bindgen makes of {}: run `cargo run -p apexalloc-sys-gen`",
                  out.display(), header.display());
        return ExitCode::FAILURE;
    }
    if old != fresh {
        if let Err(e) = std::fs::write(&out, &fresh) {
            eprintln!("apexalloc-sys-gen: cannot write {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", out.display());
    } else {
        println!("{} already up to date", out.display());
    }
    ExitCode::SUCCESS
}
