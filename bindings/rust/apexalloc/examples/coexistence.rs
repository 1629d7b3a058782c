//! Two ApexAllocs in one process: this crate's private copy and libapexalloc.so preloaded as
//! the C library's malloc. Run by CTest (label `rust`) as
//! `coexistence path/to/libapexalloc.so`: the program runs itself again under LD_PRELOAD and
//! checks, in the child, that
//! - the preloaded library is there (its `apex_stats_get` is visible to dlsym) and serves
//!   C's `malloc`: its statistics move with `malloc`, this crate's do not;
//! - this crate's copy serves Rust (`#[global_allocator]`) and its heaps: its statistics move,
//!   the preloaded library's do not by as much;
//! - the two are distinct (the crate's `apex_*` symbols are hidden, so nothing bound across).

use std::alloc::Layout;
use std::ffi::{c_char, c_int, c_void};
use std::process::{Command, ExitCode};

use apexalloc::{stats, ApexAlloc, Heap};

#[global_allocator]
static GLOBAL: ApexAlloc = ApexAlloc;

extern "C" {
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn malloc(size: usize) -> *mut c_void;
    fn free(p: *mut c_void);
}

type StatsGet = unsafe extern "C" fn(*mut apexalloc::sys::apex_stats_t, usize) -> c_int;

fn preloaded_allocated(get: StatsGet) -> usize {
    let mut s = apexalloc::sys::apex_stats_t::default();
    assert_eq!(unsafe { get(&mut s, std::mem::size_of_val(&s)) }, 0);
    s.allocated
}

fn child() -> Result<(), String> {
    // RTLD_DEFAULT is the null handle on glibc.
    let sym = unsafe { dlsym(std::ptr::null_mut(), c"apex_stats_get".as_ptr()) };
    if sym.is_null() {
        return Err("apex_stats_get is not visible: libapexalloc.so was not preloaded".into());
    }
    if std::ptr::eq(sym as *const (), apexalloc::sys::apex_stats_get as *const ()) {
        return Err("dlsym found this crate's own copy: its symbols are not hidden".into());
    }
    let theirs: StatsGet = unsafe { std::mem::transmute::<*mut c_void, StatsGet>(sym) };

    // C's malloc: served by the preloaded library, invisible to this crate's copy.
    let (ours0, theirs0) = (stats::global().allocated, preloaded_allocated(theirs));
    let blocks: Vec<*mut c_void> = (0..64).map(|_| unsafe { malloc(64 << 10) }).collect();
    let (ours1, theirs1) = (stats::global().allocated, preloaded_allocated(theirs));
    if theirs1 < theirs0 + 60 * (64 << 10) {
        return Err(format!("malloc did not reach the preloaded library: {theirs0} -> {theirs1}"));
    }
    if blocks.iter().any(|b| apexalloc::owns(*b)) {
        return Err("this crate's copy claims a block of the preloaded malloc".into());
    }

    // Rust's allocations and a Heap: served by this crate's copy.
    let v: Vec<u8> = vec![7; 4 << 20];
    let heap = Heap::new();
    let p = heap.alloc(Layout::from_size_align(1 << 20, 64).unwrap()).unwrap();
    let (ours2, theirs2) = (stats::global().allocated, preloaded_allocated(theirs));
    if ours2 < ours1 + (5 << 20) {
        return Err(format!("this crate's statistics did not move: {ours1} -> {ours2}"));
    }
    if theirs2 > theirs1 + (1 << 20) {
        return Err(format!("Rust's allocations reached the preloaded library: {theirs1} -> {theirs2}"));
    }
    if !apexalloc::owns(v.as_ptr()) || !apexalloc::owns(p.as_ptr()) {
        return Err("this crate's copy does not own its own allocations".into());
    }
    for b in blocks {
        unsafe { free(b) };
    }
    if preloaded_allocated(theirs) > theirs1 - 60 * (64 << 10) {
        return Err("free did not return the blocks to the preloaded library".into());
    }
    drop(heap);
    println!("coexistence: ok (crate copy {ours0} -> {ours2} bytes; preloaded {theirs0} -> {theirs1} bytes)");
    Ok(())
}

fn main() -> ExitCode {
    if std::env::var_os("APEX_COEXISTENCE_CHILD").is_some() {
        return match child() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("coexistence: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let Some(lib) = std::env::args().nth(1) else {
        eprintln!("usage: coexistence path/to/libapexalloc.so");
        return ExitCode::from(2);
    };
    let status = Command::new(std::env::current_exe().expect("current_exe"))
        .env("APEX_COEXISTENCE_CHILD", "1")
        .env("LD_PRELOAD", &lib)
        .status()
        .expect("run the child");
    if status.success() {
        ExitCode::SUCCESS
    } else {
        eprintln!("coexistence: the child under LD_PRELOAD={lib} failed ({status})");
        ExitCode::FAILURE
    }
}
