//! `Heap`: an ApexAlloc heap of one's own, as a safe owned handle and as an allocator.

use core::alloc::Layout;
use core::ffi::{c_int, c_void};
use core::fmt;
use core::ptr::{self, NonNull};

use allocator_api2::alloc::AllocError;
use apexalloc_sys as sys;

use crate::stats::{self, Stats};

/// A heap of one's own (`apex_heap_t`): a set of superblocks whose objects can all be freed at
/// once, with optional limit on its live bytes.
///
/// `&Heap` is an allocator ([`allocator_api2::alloc::Allocator`] on stable Rust, and
/// `core::alloc::Allocator` with the `nightly` feature), so collections can live in it, and the
/// borrow checker keeps every one of them inside the heap's lifetime:
///
/// ```
/// use allocator_api2::vec::Vec;
/// use apexalloc::Heap;
///
/// let heap = Heap::new();
/// let mut v = Vec::new_in(&heap);
/// v.extend_from_slice(b"objects that go with the heap");
/// assert_eq!(heap.stats().allocated, apexalloc::usable_size(v.as_ptr()));
/// drop(v);
/// drop(heap); // apex_heap_destroy: whatever is still in the heap is freed at once
/// ```
///
/// A heap with a limit fails an allocation that would take it over, which the `try_` methods of
/// the collections report as an error instead of aborting:
///
/// ```
/// use allocator_api2::vec::Vec;
///
/// let heap = apexalloc::Heap::with_limit(1 << 20);
/// let mut v: Vec<u8, _> = Vec::new_in(&heap);
/// assert!(v.try_reserve(512 << 10).is_ok());
/// assert!(v.try_reserve_exact(2 << 20).is_err());
/// ```
///
/// # Threads: `Send` and `Sync`
///
/// The C contract: any thread may allocate from a heap (its creator, the *owner*, on the
/// lock-free fast path; any other thread correctly, through a per-heap mutex), and any thread
/// may free any of its objects. So `Heap` is `Send` (a heap moved to another thread keeps
/// working; allocations from the new thread take the mutex until the creator exits, after which
/// the first thread to allocate becomes the owner) and `Sync` (`&Heap` may be shared: scoped
/// threads can fill `Vec`s in one heap). Destroying a heap requires that no other thread use it
/// or its objects: `Drop` takes the heap by value, which the borrow checker only allows once every
/// `&Heap`, and so every collection allocated in it, is gone. [`visit`](Heap::visit) needs a
/// quiescent heap and therefore takes `&mut self`.
pub struct Heap {
    raw: NonNull<sys::apex_heap_t>,
}

// SAFETY: see "Threads" above: apex_heap_alloc/realloc/calloc are correct from any thread, frees
// from any thread, and destroy/visit take the handle by value or by unique borrow.
unsafe impl Send for Heap {}
unsafe impl Sync for Heap {}

/// A live object found by [`Heap::visit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveObject {
    /// Its address.
    pub ptr: NonNull<u8>,
    /// Its usable size.
    pub usable_size: usize,
}

impl Heap {
    /// A new heap, owned by the calling thread. Aborts like `Vec` does when out of memory; see
    /// [`try_new`](Heap::try_new).
    pub fn new() -> Heap {
        Heap::try_new().unwrap_or_else(|_| std::alloc::handle_alloc_error(Layout::new::<Heap>()))
    }

    /// A new heap, or `Err` when out of memory.
    pub fn try_new() -> Result<Heap, AllocError> {
        NonNull::new(unsafe { sys::apex_heap_new() }).map(|raw| Heap { raw }).ok_or(AllocError)
    }

    /// A new heap whose live objects may not exceed `limit` bytes (usable sizes; 0: no limit):
    /// an allocation that would exceed it fails.
    pub fn with_limit(limit: usize) -> Heap {
        Heap::try_with_limit(limit).unwrap_or_else(|_| std::alloc::handle_alloc_error(Layout::new::<Heap>()))
    }

    /// [`with_limit`](Heap::with_limit), or `Err` when out of memory.
    pub fn try_with_limit(limit: usize) -> Result<Heap, AllocError> {
        let opts = sys::apex_heap_options_t { size: core::mem::size_of::<sys::apex_heap_options_t>(), limit };
        NonNull::new(unsafe { sys::apex_heap_new_ex(&opts) }).map(|raw| Heap { raw }).ok_or(AllocError)
    }

    /// The C handle, for calls of apexalloc-sys. It stays valid as long as `self`.
    pub fn as_raw(&self) -> *mut sys::apex_heap_t {
        self.raw.as_ptr()
    }

    /// Allocates `layout` from this heap; `None` when out of memory or over the limit. The object
    /// must be freed with [`Heap::free`] (or with any heap's `free`, or by the heap's end).
    /// A zero size gets a unique minimal allocation.
    pub fn alloc(&self, layout: Layout) -> Option<NonNull<u8>> {
        NonNull::new(unsafe { sys::apex_heap_alloc(self.as_raw(), layout.size(), layout.align()) }.cast())
    }

    /// Like [`alloc`](Heap::alloc), zero-filled.
    pub fn alloc_zeroed(&self, layout: Layout) -> Option<NonNull<u8>> {
        NonNull::new(unsafe { sys::apex_heap_calloc(self.as_raw(), 1, layout.size(), layout.align()) }.cast())
    }

    /// Resizes an object to `new_size` bytes with `layout`'s alignment, moving it into this heap
    /// if it must move. `None` when out of memory or over the limit; `ptr` is then unchanged.
    ///
    /// # Safety
    /// `ptr` is a live ApexAlloc object of `layout`; `new_size` is not 0 (which would free it);
    /// on success `ptr` is no longer valid.
    pub unsafe fn realloc(&self, ptr: NonNull<u8>, layout: Layout, new_size: usize) -> Option<NonNull<u8>> {
        debug_assert!(new_size != 0, "Heap::realloc to 0 bytes");
        NonNull::new(
            sys::apex_heap_realloc(self.as_raw(), ptr.as_ptr().cast(), layout.size(), new_size, layout.align())
                .cast(),
        )
    }

    /// Frees an object of `layout.size()` bytes (`apex_free_sized`). Any thread may free any
    /// ApexAlloc object, whichever heap it came from; `self` only names the call.
    ///
    /// # Safety
    /// `ptr` is a live ApexAlloc object allocated with `layout.size()` bytes (or any size up to
    /// its usable size), not used afterwards. A size that cannot belong to it aborts the process.
    pub unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout) {
        sys::apex_free_sized(ptr.as_ptr().cast(), layout.size());
    }

    /// This heap's statistics (`apex_heap_stats_get`): its live bytes, blocks, and its cumulative
    /// `thread_allocated` / `thread_deallocated`.
    pub fn stats(&self) -> Stats {
        stats::heap(self.as_raw())
    }

    /// Every live object of the heap (`apex_heap_visit`), collected into a vector first: the
    /// walk may hold a lock of the heap, so nothing allocates while it runs.
    pub fn visit(&mut self) -> Vec<LiveObject> {
        unsafe extern "C" fn count(_ptr: *mut c_void, _size: usize, arg: *mut c_void) -> c_int {
            *arg.cast::<usize>() += 1;
            0
        }
        unsafe extern "C" fn collect(ptr: *mut c_void, size: usize, arg: *mut c_void) -> c_int {
            let out = &mut *arg.cast::<Vec<LiveObject>>();
            if out.len() == out.capacity() {
                return 1; // full: never grow (allocate) inside the walk
            }
            if let Some(ptr) = NonNull::new(ptr.cast()) {
                out.push(LiveObject { ptr, usable_size: size });
            }
            0
        }
        loop {
            let mut n = 0usize;
            unsafe { sys::apex_heap_visit(self.as_raw(), Some(count), (&mut n as *mut usize).cast()) };
            let mut out: Vec<LiveObject> = Vec::with_capacity(n + n / 8 + 16);
            let rc = unsafe { sys::apex_heap_visit(self.as_raw(), Some(collect), (&mut out as *mut Vec<LiveObject>).cast()) };
            if rc == 0 {
                return out;
            }
        }
    }

    /// Frees everything in the heap at once and returns its memory (`apex_heap_destroy`); the
    /// same as dropping it.
    pub fn destroy(self) {
        drop(self);
    }

    /// Deletes the handle but keeps its objects (`apex_heap_delete`): objects made with
    /// [`alloc`](Heap::alloc) stay valid and can be freed from any thread (with
    /// [`Heap::free`] of another heap, or `GlobalAlloc::dealloc` of [`ApexAlloc`](crate::ApexAlloc));
    /// their memory is reused by other heaps as they are freed.
    pub fn delete(self) {
        let raw = self.as_raw();
        core::mem::forget(self);
        let rc = unsafe { sys::apex_heap_delete(raw) };
        debug_assert_eq!(rc, 0);
    }

    /// Keeps the heap for the rest of the process, so collections allocated in it may live as
    /// long (`Box<T, &'static Heap>`).
    pub fn leak(self) -> &'static Heap {
        Box::leak(Box::new(self))
    }

    fn resize(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if old.size() == 0 {
            return self.allocate_in(new, false);
        }
        if new.size() == 0 {
            unsafe { sys::apex_free_sized(ptr.as_ptr().cast(), old.size()) };
            return Ok(dangling(new));
        }
        let p = unsafe { sys::apex_heap_realloc(self.as_raw(), ptr.as_ptr().cast(), old.size(), new.size(), new.align()) };
        NonNull::new(p.cast::<u8>()).map(|p| slice(p, new.size())).ok_or(AllocError)
    }

    fn allocate_in(&self, layout: Layout, zeroed: bool) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            return Ok(dangling(layout));
        }
        let p = if zeroed { self.alloc_zeroed(layout) } else { self.alloc(layout) };
        p.map(|p| slice(p, layout.size())).ok_or(AllocError)
    }
}

fn dangling(layout: Layout) -> NonNull<[u8]> {
    // A well-aligned non-null address that is never dereferenced (zero-sized objects).
    slice(unsafe { NonNull::new_unchecked(ptr::without_provenance_mut(layout.align())) }, 0)
}

fn slice(p: NonNull<u8>, len: usize) -> NonNull<[u8]> {
    NonNull::slice_from_raw_parts(p, len)
}

impl Default for Heap {
    fn default() -> Heap {
        Heap::new()
    }
}

impl Drop for Heap {
    fn drop(&mut self) {
        let rc = unsafe { sys::apex_heap_destroy(self.as_raw()) };
        debug_assert_eq!(rc, 0);
    }
}

impl fmt::Debug for Heap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Heap").field("raw", &self.raw).finish()
    }
}

/// One implementation for both Allocator traits (allocator_api2's on stable, core's on nightly).
macro_rules! allocator_for_heap {
    ($trait:path, $err:path) => {
        unsafe impl $trait for &Heap {
            #[inline]
            fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, $err> {
                (**self).allocate_in(layout, false).map_err(|_| $err)
            }

            #[inline]
            fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, $err> {
                (**self).allocate_in(layout, true).map_err(|_| $err)
            }

            #[inline]
            unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
                if layout.size() != 0 {
                    sys::apex_free_sized(ptr.as_ptr().cast(), layout.size());
                }
            }

            unsafe fn grow(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, $err> {
                (**self).resize(ptr, old, new).map_err(|_| $err)
            }

            unsafe fn grow_zeroed(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, $err> {
                let p = (**self).resize(ptr, old, new).map_err(|_| $err)?;
                // An in-place grow keeps whatever the slack held: zero the new tail.
                p.cast::<u8>().as_ptr().add(old.size()).write_bytes(0, new.size() - old.size());
                Ok(p)
            }

            unsafe fn shrink(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, $err> {
                (**self).resize(ptr, old, new).map_err(|_| $err)
            }
        }
    };
}

allocator_for_heap!(allocator_api2::alloc::Allocator, allocator_api2::alloc::AllocError);
#[cfg(feature = "nightly")]
allocator_for_heap!(core::alloc::Allocator, core::alloc::AllocError);
