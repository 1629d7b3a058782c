//! Heap: a safe handle, an allocator for allocator_api2 collections and hashbrown, limits that
//! fail an allocation instead of aborting, visit / destroy / delete / leak.
//! (This binary keeps the system allocator as its global one: only the heaps are ApexAlloc.)

use std::alloc::Layout;
use std::collections::HashSet;
use std::ptr::NonNull;

use allocator_api2::alloc::Allocator;
use allocator_api2::boxed::Box as HBox;
use allocator_api2::vec::Vec as HVec;
use apexalloc::Heap;

#[test]
fn a_vec_lives_in_the_heap_and_goes_with_it() {
    let heap = Heap::new();
    assert_eq!(heap.stats().allocated, 0);
    let mut v = HVec::new_in(&heap);
    for i in 0..100_000u64 {
        v.push(i * 3);
    }
    assert!(v.iter().enumerate().all(|(i, x)| *x == i as u64 * 3));
    assert!(apexalloc::owns(v.as_ptr()));
    let s = heap.stats();
    assert_eq!(s.allocated, apexalloc::usable_size(v.as_ptr()), "{s:?}");
    assert!(s.thread_allocated >= 800_000);
    v.truncate(10);
    v.shrink_to_fit();
    assert!(heap.stats().allocated < 1000);
    drop(v);
    assert_eq!(heap.stats().allocated, 0);
    assert!(heap.stats().thread_deallocated >= 800_000);
}

#[test]
fn a_hashbrown_map_lives_in_the_heap() {
    let heap = Heap::new();
    let mut map = hashbrown::HashMap::with_capacity_in(16, &heap);
    for i in 0..50_000u64 {
        map.insert(i, i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    }
    assert_eq!(map.len(), 50_000);
    assert!((0..50_000u64).all(|i| map[&i] == i.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    assert!(heap.stats().allocated >= 50_000 * 16);
    map.retain(|k, _| k % 10 == 0);
    map.shrink_to_fit();
    assert_eq!(map.len(), 5_000);
    drop(map);
    assert_eq!(heap.stats().allocated, 0);
}

#[test]
fn a_heap_limit_is_an_allocation_error_not_an_abort() {
    let heap = Heap::with_limit(1 << 20);
    let big = Layout::from_size_align(2 << 20, 16).unwrap();
    assert!((&heap).allocate(big).is_err());
    assert!(heap.alloc(big).is_none());
    assert!(heap.alloc_zeroed(big).is_none());

    let mut v: HVec<u8, _> = HVec::new_in(&heap);
    assert!(v.try_reserve_exact(512 << 10).is_ok());
    v.extend(std::iter::repeat_n(7u8, 512 << 10));
    assert!(v.try_reserve_exact(1 << 20).is_err(), "grew past the limit");
    assert_eq!(v.len(), 512 << 10, "a failed grow lost the contents");
    assert!(v.iter().all(|b| *b == 7));

    let mut map: hashbrown::HashMap<u64, [u8; 64], hashbrown::DefaultHashBuilder, _> =
        hashbrown::HashMap::with_hasher_in(Default::default(), &heap);
    assert!(map.try_reserve(100_000).is_err());
    drop(v);
    // Under the limit again: the heap keeps working.
    assert!(map.try_reserve(1000).is_ok());
    map.insert(1, [1; 64]);
    assert_eq!(map[&1][63], 1);
    assert!(heap.stats().allocated <= 1 << 20);
}

#[test]
fn raw_alloc_free_realloc_and_alignment() {
    let heap = Heap::new();
    for shift in 0..=20 {
        let layout = Layout::from_size_align(100, 1 << shift).unwrap();
        let p = heap.alloc(layout).unwrap();
        assert_eq!(p.as_ptr() as usize % (1 << shift), 0);
        unsafe {
            p.as_ptr().write_bytes(3, 100);
            let q = heap.realloc(p, layout, 100_000).unwrap();
            assert_eq!(q.as_ptr() as usize % (1 << shift), 0);
            assert!(std::slice::from_raw_parts(q.as_ptr(), 100).iter().all(|b| *b == 3));
            heap.free(q, Layout::from_size_align(100_000, 1 << shift).unwrap());
        }
    }
    assert_eq!(heap.stats().allocated, 0);
}

#[test]
fn the_allocator_trait_grows_shrinks_and_zeroes() {
    let heap = Heap::new();
    let a = &heap;
    unsafe {
        let l16 = Layout::from_size_align(16, 8).unwrap();
        // A dirty chunk, freed, so that the next ones may reuse dirty memory.
        let d = a.allocate(Layout::from_size_align(4096, 8).unwrap()).unwrap();
        d.cast::<u8>().as_ptr().write_bytes(0xee, 4096);
        a.deallocate(d.cast(), Layout::from_size_align(4096, 8).unwrap());

        let p = a.allocate(l16).unwrap();
        assert_eq!(p.len(), 16);
        p.cast::<u8>().as_ptr().write_bytes(0xee, 16);
        let l4k = Layout::from_size_align(3000, 64).unwrap();
        let g = a.grow_zeroed(p.cast(), l16, l4k).unwrap();
        let bytes = std::slice::from_raw_parts(g.cast::<u8>().as_ptr(), 3000);
        assert!(bytes[..16].iter().all(|b| *b == 0xee));
        assert!(bytes[16..].iter().all(|b| *b == 0), "grow_zeroed left dirty bytes");
        assert_eq!(g.cast::<u8>().as_ptr() as usize % 64, 0);
        let s = a.shrink(g.cast(), l4k, Layout::from_size_align(10, 64).unwrap()).unwrap();
        assert!(std::slice::from_raw_parts(s.cast::<u8>().as_ptr(), 10).iter().all(|b| *b == 0xee));
        // Shrinking to nothing frees; growing from nothing allocates.
        let z = a.shrink(s.cast(), Layout::from_size_align(10, 64).unwrap(), Layout::from_size_align(0, 64).unwrap()).unwrap();
        assert_eq!(z.len(), 0);
        assert_eq!(heap.stats().allocated, 0);
        let r = a.grow(z.cast(), Layout::from_size_align(0, 64).unwrap(), Layout::from_size_align(200, 64).unwrap()).unwrap();
        assert!(apexalloc::owns(r.cast::<u8>().as_ptr()));
        a.deallocate(r.cast(), Layout::from_size_align(200, 64).unwrap());

        let zeroed = a.allocate_zeroed(Layout::from_size_align(5000, 4096).unwrap()).unwrap();
        assert!(std::slice::from_raw_parts(zeroed.cast::<u8>().as_ptr(), 5000).iter().all(|b| *b == 0));
        a.deallocate(zeroed.cast(), Layout::from_size_align(5000, 4096).unwrap());
    }
    // Zero-sized allocations never reach the C side.
    let zst: HVec<(), _> = (0..1000).map(|_| ()).fold(HVec::new_in(&heap), |mut v, x| {
        v.push(x);
        v
    });
    assert_eq!(zst.len(), 1000);
    assert_eq!(heap.stats().allocated, 0);
}

#[test]
fn visit_lists_every_live_object() {
    let mut heap = Heap::new();
    let layout = Layout::from_size_align(40, 16).unwrap();
    let mut mine = HashSet::new();
    for i in 0..300 {
        let p = heap.alloc(Layout::from_size_align(40 + i * 10, 16).unwrap()).unwrap();
        mine.insert(p.as_ptr() as usize);
    }
    let seen = heap.visit();
    assert_eq!(seen.len(), 300);
    assert_eq!(seen.iter().map(|o| o.ptr.as_ptr() as usize).collect::<HashSet<_>>(), mine);
    assert!(seen.iter().all(|o| o.usable_size >= 40));
    // Free half; the walk follows.
    for (i, o) in seen.iter().enumerate() {
        if i % 2 == 0 {
            unsafe { heap.free(o.ptr, layout) };
        }
    }
    assert_eq!(heap.visit().len(), 150);
    // Drop destroys the rest at once.
}

#[test]
fn destroy_frees_everything_and_delete_keeps_objects() {
    let before = apexalloc::stats::global().heaps;
    let heap = Heap::new();
    assert!(apexalloc::stats::global().heaps >= before);
    let layout = Layout::from_size_align(1000, 16).unwrap();
    for _ in 0..1000 {
        heap.alloc(layout).unwrap(); // never freed one by one
    }
    assert!(heap.stats().allocated >= 1_000_000);
    heap.destroy();

    let heap = Heap::new();
    let kept: Vec<NonNull<u8>> = (0..100)
        .map(|i| {
            let p = heap.alloc(layout).unwrap();
            unsafe { p.as_ptr().write_bytes(i as u8, 1000) };
            p
        })
        .collect();
    heap.delete();
    let other = Heap::new();
    for (i, p) in kept.into_iter().enumerate() {
        assert!(apexalloc::owns(p.as_ptr()), "delete lost an object");
        assert!(unsafe { std::slice::from_raw_parts(p.as_ptr(), 1000) }.iter().all(|b| *b == i as u8));
        unsafe { other.free(p, layout) };
    }
}

#[test]
fn a_leaked_heap_serves_static_collections() {
    let heap: &'static Heap = Heap::new().leak();
    let b = HBox::new_in([5u64; 32], heap);
    assert_eq!(b[31], 5);
    assert!(heap.stats().allocated >= 256);
}

#[test]
fn heaps_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Heap>();

    // Several threads allocate from one heap (the creator's fast path, the others' locked path).
    let heap = Heap::new();
    let vecs: Vec<HVec<u32, &Heap>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4u32)
            .map(|t| {
                let heap = &heap;
                s.spawn(move || {
                    let mut v = HVec::new_in(heap);
                    v.extend((0..20_000).map(|i| i * 4 + t));
                    v
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (t, v) in vecs.iter().enumerate() {
        assert!(v.iter().enumerate().all(|(i, x)| *x == i as u32 * 4 + t as u32));
    }
    assert!(heap.stats().allocated >= 4 * 80_000);
    // Frees of objects that other threads allocated from the heap are remote frees: the heap's
    // figures drop when its shared part next collects them (when it allocates again), not here.
    drop(vecs);

    // A heap moved to another thread keeps working there and is destroyed there.
    let heap = Heap::new();
    let p = heap.alloc(Layout::new::<u64>()).unwrap().as_ptr() as usize;
    std::thread::spawn(move || {
        let q = heap.alloc(Layout::new::<u64>()).unwrap();
        assert_ne!(q.as_ptr() as usize, p);
        assert!(heap.stats().allocated >= 32);
        drop(heap);
    })
    .join()
    .unwrap();
}
