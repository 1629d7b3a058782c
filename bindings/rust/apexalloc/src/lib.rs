//! ApexAlloc for Rust: a secure memory allocator as `#[global_allocator]`, heaps of one's own as
//! allocators, and typed statistics.
//!
//! ```
//! use apexalloc::ApexAlloc;
//!
//! #[global_allocator]
//! static GLOBAL: ApexAlloc = ApexAlloc;
//! ```
//!
//! ApexAlloc is written in C11 (its core is compiled into this crate by `apexalloc-sys`, nothing
//! needs to be installed): thread-local heaps with a short lock-free fast path, and a check on
//! every free: a double free, an interior or foreign pointer, or (here) a `dealloc` whose size
//! cannot belong to the pointer aborts the process with one line on stderr, e.g.
//! `apexalloc: double free at 0x7f81aa830000 (size class 3, 48 bytes)`.
//!
//! - [`ApexAlloc`]: the [`GlobalAlloc`](core::alloc::GlobalAlloc), any alignment up to and
//!   beyond a page.
//! - [`Heap`]: a heap of one's own; `&Heap` is an
//!   [`Allocator`](allocator_api2::alloc::Allocator), so `Vec::new_in(&heap)` or a hashbrown map
//!   lives in it, and all of it goes at once when the heap is dropped. A heap may have a limit.
//! - [`stats`]: snapshots of the process, the thread, a heap, each size class, as plain structs.
//! - [`ctl`]: every statistic, option and command by name (`stats.allocated`,
//!   `opt.decay_ms`, `heap.collect`), with [`ctl::keys`] listing the registry.
//! - [`print_stats`] and [`heap_map`]: the statistics as text or JSON, the memory as an SVG map.
//! - [`owns`], [`usable_size`], [`collect`].
//!
//! The copy of ApexAlloc in this crate is private to the program (its C symbols are hidden), so
//! it coexists with another allocator, including `libapexalloc.so` under `LD_PRELOAD`, which then
//! serves C's `malloc` while this one serves Rust. The `override` feature makes this copy replace
//! the C library's `malloc` family instead, as the `mimalloc` crate's feature of that name does.
//!
//! Features: `override`, `debug` (the allocator's internal consistency checks), `serde`
//! (`Serialize`/`Deserialize` for the statistics), `nightly` (`core::alloc::Allocator` for
//! `&Heap`; needs a nightly compiler, it does not build on stable).
#![cfg_attr(feature = "nightly", feature(allocator_api))]
#![warn(missing_docs)]

pub mod ctl;
mod global;
mod heap;
mod report;
pub mod stats;

pub use allocator_api2;
pub use apexalloc_sys as sys;
pub use global::ApexAlloc;
pub use heap::{Heap, LiveObject};
pub use report::{heap_map, print_stats, Format};
pub use stats::{BinStats, Stats};

/// The library's version, e.g. `"0.1.0"` (`apex_version_string`).
pub fn version() -> &'static str {
    let text = unsafe { core::ffi::CStr::from_ptr(sys::apex_version_string()) };
    text.to_str().expect("the version is ASCII")
}

/// Whether `ptr` is the start of a live ApexAlloc allocation of this crate's copy (`apex_owns`):
/// false for freed, interior and foreign pointers and null. Never aborts.
///
/// ```
/// let b = Box::new(7u64);
/// let ours = apexalloc::Heap::new();
/// let p = ours.alloc(std::alloc::Layout::new::<u64>()).unwrap();
/// assert!(apexalloc::owns(p.as_ptr()));
/// assert!(!apexalloc::owns(std::ptr::null::<u8>()));
/// # let _ = b;
/// ```
pub fn owns<T: ?Sized>(ptr: *const T) -> bool {
    unsafe { sys::apex_owns(ptr.cast::<core::ffi::c_void>()) != 0 }
}

/// The number of bytes usable at `ptr`, at least the size allocated (`apex_usable_size`).
///
/// ```
/// # #[global_allocator] static A: apexalloc::ApexAlloc = apexalloc::ApexAlloc;
/// let v: Vec<u8> = Vec::with_capacity(100);
/// assert!(apexalloc::usable_size(v.as_ptr()) >= 100);
/// ```
///
/// # Panics
/// Does not return for a pointer that is not a live ApexAlloc allocation: the allocator reports
/// an invalid pointer and aborts the process (use [`owns`] first for a pointer of unknown origin).
pub fn usable_size<T: ?Sized>(ptr: *const T) -> usize {
    unsafe { sys::apex_usable_size(ptr.cast::<core::ffi::c_void>()) }
}

/// Frees the memory of heaps whose threads have exited and returns cached memory to the
/// operating system (`apex_collect`, the ctl command `heap.collect`).
pub fn collect() {
    unsafe { sys::apex_collect() }
}
