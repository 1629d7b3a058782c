//! `ApexAlloc`: the process-wide allocator (`#[global_allocator]`).

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;

use apexalloc_sys as sys;

/// Every pointer ApexAlloc returns is aligned to at least this many bytes.
pub(crate) const MIN_ALIGN: usize = sys::APEX_MIN_ALIGN as usize;

/// ApexAlloc as Rust's global allocator.
///
/// ```
/// use apexalloc::ApexAlloc;
///
/// #[global_allocator]
/// static GLOBAL: ApexAlloc = ApexAlloc;
///
/// let v: Vec<u64> = (0..1000).collect();
/// assert!(apexalloc::owns(v.as_ptr()));
/// ```
///
/// Each call goes to the calling thread's default heap, on the C core's lock-free fast path:
///
/// - `alloc`: `apex_malloc(size)` when the alignment is at most 16 (every ApexAlloc pointer is
///   16-byte aligned), `apex_aligned_alloc(align, size)` otherwise (any power of two);
/// - `alloc_zeroed`: `apex_calloc`, or `apex_heap_calloc` with the alignment;
/// - `dealloc`: `apex_free_sized(ptr, layout.size())`, so a size that cannot belong to the
///   pointer is caught as heap corruption;
/// - `realloc`: `apex_realloc`, or `apex_heap_realloc` with the alignment, which moves the block
///   when the old address does not have the alignment.
///
/// None of them unwinds (they are C calls); failure is a null pointer, as the trait requires.
/// Memory may be freed by any thread: a free from another thread than the allocating one costs
/// one atomic push.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ApexAlloc;

unsafe impl GlobalAlloc for ApexAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MIN_ALIGN {
            sys::apex_malloc(layout.size()).cast()
        } else {
            sys::apex_aligned_alloc(layout.align(), layout.size()).cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MIN_ALIGN {
            sys::apex_calloc(1, layout.size()).cast()
        } else {
            sys::apex_heap_calloc(sys::apex_heap_default(), 1, layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        sys::apex_free_sized(ptr.cast::<c_void>(), layout.size());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= MIN_ALIGN {
            sys::apex_realloc(ptr.cast(), new_size).cast()
        } else {
            // new_size > 0 by the trait's contract, so apex_heap_realloc's (p, 0) -> free rule
            // never applies; a null default heap (out of memory) gives null, ptr untouched.
            sys::apex_heap_realloc(sys::apex_heap_default(), ptr.cast(), layout.size(), new_size, layout.align())
                .cast()
        }
    }
}
