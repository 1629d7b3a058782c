//! Statistics snapshots as plain Rust structs.
//!
//! [`global`] (the process), [`thread`] (the calling thread's default heap), [`Heap::stats`]
//! (one heap) and [`bins`] / [`bin`] (per size class). Counters are kept per heap by their
//! owner and summed when read, so a snapshot costs nothing on the allocation paths; with other
//! threads running the figures are approximate, exact when the process is quiescent.
//!
//! ```
//! let before = apexalloc::stats::thread();
//! let heap = apexalloc::Heap::new();
//! let mut v = allocator_api2::vec::Vec::with_capacity_in(1000, &heap);
//! v.extend(0..1000u64);
//! let s = heap.stats();
//! assert!(s.allocated >= 8000);
//! assert!(s.thread_allocated >= 8000);
//! # let _ = before;
//! ```
//!
//! [`Heap::stats`]: crate::Heap::stats

use apexalloc_sys as sys;
use core::mem::{size_of, MaybeUninit};

macro_rules! stats_struct {
    ($(#[$meta:meta])* pub struct $name:ident from $raw:ty { $($(#[$fmeta:meta])* $field:ident,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        pub struct $name {
            $($(#[$fmeta])* pub $field: usize,)*
        }

        impl From<&$raw> for $name {
            fn from(raw: &$raw) -> Self {
                $name { $($field: raw.$field,)* }
            }
        }

        // The struct mirrors every field of the C one but `size`: when the header gains a field,
        // this stops compiling until the field is added here (after regenerating the bindings).
        const _: () = assert!(
            size_of::<$name>() + size_of::<usize>() == size_of::<$raw>(),
            concat!(stringify!($name), " does not mirror every field of ", stringify!($raw))
        );
    };
}

stats_struct! {
    /// A statistics snapshot (`apex_stats_t`): of the process ([`global`]), of a thread's default
    /// heap ([`thread`]) or of one heap ([`Heap::stats`](crate::Heap::stats)). Sizes in bytes.
    pub struct Stats from sys::apex_stats_t {
        /// Bytes in live allocations (usable sizes).
        allocated,
        /// Of which huge objects (their own mappings).
        allocated_huge,
        /// Bytes currently mapped from the operating system.
        mapped,
        /// Highest value `mapped` has had (reset with the ctl command `stats.reset`).
        mapped_peak,
        /// 4 MiB superblocks currently mapped (owned or cached).
        superblocks,
        /// Heaps created so far (live, abandoned or reusable).
        heaps,
        /// Heaps whose thread has exited, waiting to be adopted.
        heaps_abandoned,
        /// Chunks freed by a thread other than their owner (collected so far).
        remote_frees,
        /// Bytes of slices given to blocks, plus huge mappings.
        active,
        /// Estimate of bytes backed by memory: pages ever touched, not given back.
        resident,
        /// Bytes of allocator metadata (superblock headers, heaps).
        metadata,
        /// Cumulative bytes asked for by malloc-family calls.
        requested,
        /// Cumulative usable bytes handed out for them (`1 - requested / requested_usable` is the waste).
        requested_usable,
        /// Cumulative bytes handed out (by this thread or heap; global: by all).
        thread_allocated,
        /// Cumulative bytes returned (to this thread or heap; global: to all).
        thread_deallocated,
        /// Live objects above the size classes, in slice runs.
        large_count,
        /// Their bytes.
        large_allocated,
        /// Live huge objects.
        huge_count,
        /// Bytes of free chunks sitting in blocks (memory held but not used).
        free_in_blocks,
        /// Blocks in use.
        blocks,
        /// Blocks neither full nor empty.
        blocks_partial,
    }
}

stats_struct! {
    /// One size class ("bin") across the process (`apex_bin_stats_t`). Bin 0 holds large objects.
    pub struct BinStats from sys::apex_bin_stats_t {
        /// Object size of the class (0 for bin 0).
        chunk_size,
        /// Live objects.
        count,
        /// Blocks serving the class.
        blocks,
        /// Of which neither full nor empty.
        blocks_partial,
        /// Bytes held free in those blocks.
        free_bytes,
    }
}

/// Number of bins: size classes `1..BIN_COUNT`, and bin 0 for large objects.
pub const BIN_COUNT: usize = sys::APEX_BIN_COUNT as usize;

type Getter = unsafe extern "C" fn(*mut sys::apex_stats_t, usize) -> core::ffi::c_int;

fn snapshot(get: impl FnOnce(*mut sys::apex_stats_t, usize) -> core::ffi::c_int) -> Stats {
    let mut raw = MaybeUninit::<sys::apex_stats_t>::zeroed();
    let rc = get(raw.as_mut_ptr(), size_of::<sys::apex_stats_t>());
    assert_eq!(rc, 0, "apex_stats_get refused a correct call");
    Stats::from(unsafe { raw.assume_init_ref() })
}

/// The process: every heap of every thread (`apex_stats_get`).
pub fn global() -> Stats {
    let get: Getter = sys::apex_stats_get;
    snapshot(|p, n| unsafe { get(p, n) })
}

/// The calling thread's default heap, where [`ApexAlloc`](crate::ApexAlloc) allocates
/// (`apex_thread_stats_get`).
pub fn thread() -> Stats {
    let get: Getter = sys::apex_thread_stats_get;
    snapshot(|p, n| unsafe { get(p, n) })
}

pub(crate) fn heap(h: *mut sys::apex_heap_t) -> Stats {
    snapshot(|p, n| unsafe { sys::apex_heap_stats_get(h, p, n) })
}

/// Size class `bin` across the process, or `None` when `bin >= BIN_COUNT`.
pub fn bin(bin: usize) -> Option<BinStats> {
    let mut raw = MaybeUninit::<sys::apex_bin_stats_t>::zeroed();
    let rc = unsafe { sys::apex_bin_stats_get(bin, raw.as_mut_ptr(), size_of::<sys::apex_bin_stats_t>()) };
    (rc == 0).then(|| BinStats::from(unsafe { raw.assume_init_ref() }))
}

/// Every bin, indexed by bin number (`bins()[3]` is size class 3).
///
/// ```
/// let bins = apexalloc::stats::bins();
/// assert_eq!(bins.len(), apexalloc::stats::BIN_COUNT);
/// assert_eq!(bins[0].chunk_size, 0); // bin 0: large objects
/// assert!(bins.windows(2).skip(1).all(|w| w[0].chunk_size < w[1].chunk_size));
/// ```
pub fn bins() -> Vec<BinStats> {
    (0..BIN_COUNT).map(|i| bin(i).expect("every bin below BIN_COUNT exists")).collect()
}
