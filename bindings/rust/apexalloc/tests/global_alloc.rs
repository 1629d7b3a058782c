//! ApexAlloc as this test binary's #[global_allocator]: everything the standard library
//! allocates here goes through GlobalAlloc.

use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout};
use std::sync::mpsc;
use std::thread;

use apexalloc::ApexAlloc;

#[global_allocator]
static GLOBAL: ApexAlloc = ApexAlloc;

#[test]
fn the_global_allocator_is_apexalloc() {
    let before = apexalloc::stats::thread().thread_allocated;
    let v: Vec<u8> = Vec::with_capacity(100_000);
    assert!(apexalloc::owns(v.as_ptr()));
    assert!(apexalloc::usable_size(v.as_ptr()) >= 100_000);
    let after = apexalloc::stats::thread().thread_allocated;
    assert!(after - before >= 100_000, "thread_allocated moved by {}", after - before);
}

fn pattern(seed: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) ^ seed) as u8).collect()
}

#[test]
fn threads_hand_boxes_and_vecs_to_each_other() {
    // A ring of four threads: each makes objects, sends them to the next, checks and frees what
    // it receives from the previous one (so almost every free is a remote free).
    const THREADS: usize = 4;
    const ROUNDS: usize = 2000;
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..THREADS).map(|_| mpsc::channel::<(Box<[u8]>, Vec<u64>, usize)>()).unzip();
    let mut handles = Vec::new();
    for (id, rx) in receivers.into_iter().enumerate() {
        let tx = senders[(id + 1) % THREADS].clone();
        handles.push(thread::spawn(move || {
            let mut received = 0;
            for round in 0..ROUNDS {
                let seed = id * ROUNDS + round;
                let len = 1 + (seed * 97) % 5000;
                let boxed = pattern(seed, len).into_boxed_slice();
                let v: Vec<u64> = (0..(seed % 300) as u64).map(|x| x * seed as u64).collect();
                assert!(apexalloc::owns(boxed.as_ptr()));
                tx.send((boxed, v, seed)).unwrap();
                while let Ok((b, v, s)) = rx.try_recv() {
                    assert_eq!(&b[..], &pattern(s, b.len())[..]);
                    assert!(v.iter().enumerate().all(|(i, x)| *x == i as u64 * s as u64));
                    received += 1;
                }
            }
            drop(tx);
            (rx, received)
        }));
    }
    drop(senders);
    let mut total = 0;
    let rest: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (rx, received) in rest {
        total += received;
        for (b, v, s) in rx.iter() {
            assert_eq!(&b[..], &pattern(s, b.len())[..]);
            assert_eq!(v.len(), s % 300);
            total += 1;
        }
    }
    assert_eq!(total, THREADS * ROUNDS);
}

#[test]
fn every_alignment_from_1_to_1_mib() {
    for shift in 0..=20 {
        let align = 1usize << shift;
        for size in [1, 7, align.max(16) - 1, align, align + 1, 3 * align + 5, 40_000] {
            let size = size.max(1);
            let layout = Layout::from_size_align(size, align).unwrap();
            unsafe {
                let p = alloc(layout);
                assert!(!p.is_null(), "alloc({size}, {align})");
                assert_eq!(p as usize % align, 0, "alloc({size}, {align}) at {p:p}");
                assert!(apexalloc::usable_size(p) >= size);
                dealloc(p, layout);
                // Grow across classes and shrink, keeping alignment and contents.
                for new_size in [size * 2 + 100, size + 70_000, (size / 2).max(1)] {
                    let p = alloc(layout);
                    p.write_bytes(0x5a, size);
                    let q = realloc(p, layout, new_size);
                    assert!(!q.is_null());
                    assert_eq!(q as usize % align, 0, "realloc {size} -> {new_size} with align {align} at {q:p}");
                    let kept = size.min(new_size);
                    assert!((0..kept).all(|i| *q.add(i) == 0x5a), "contents lost at align {align}");
                    dealloc(q, Layout::from_size_align(new_size, align).unwrap());
                }
                let z = alloc_zeroed(layout);
                assert_eq!(z as usize % align, 0);
                assert!((0..size).all(|i| *z.add(i) == 0), "alloc_zeroed({size}, {align}) not zero");
                dealloc(z, layout);
            }
        }
    }
}

#[test]
fn reallocs_grow_and_shrink_across_size_classes() {
    // Small classes, large (slice runs) and huge (own mappings above ~4 MiB), and back.
    let mut v: Vec<u8> = Vec::new();
    let mut len = 0usize;
    for target in [10usize, 100, 1000, 10_000, 100_000, 1 << 20, 5 << 20, 9 << 20] {
        while len < target {
            v.push((len % 251) as u8);
            len += 1;
        }
        assert!(apexalloc::owns(v.as_ptr()));
    }
    for target in [6 << 20, 2 << 20, 300_000, 20_000, 500, 17, 1] {
        v.truncate(target);
        v.shrink_to_fit();
        assert!(v.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8), "contents lost at {target}");
        assert!(apexalloc::owns(v.as_ptr()));
        assert!(apexalloc::usable_size(v.as_ptr()) >= target);
    }
    // The same with an over-aligned layout, through realloc directly.
    unsafe {
        let mut size = 24;
        let layout = Layout::from_size_align(size, 256).unwrap();
        let mut p = alloc(layout);
        p.write_bytes(1, size);
        for new_size in [5000, 200_000, 6 << 20, 3000, 40] {
            p = realloc(p, Layout::from_size_align(size, 256).unwrap(), new_size);
            assert!(!p.is_null());
            assert_eq!(p as usize % 256, 0);
            assert!((0..size.min(new_size)).all(|i| *p.add(i) == 1));
            p.write_bytes(1, new_size);
            size = new_size;
        }
        dealloc(p, Layout::from_size_align(size, 256).unwrap());
    }
}

#[test]
fn zero_sized_types_never_reach_the_allocator() {
    #[derive(Debug, PartialEq)]
    struct Nothing;
    let before = apexalloc::stats::thread().thread_allocated;
    let v: Vec<Nothing> = (0..1_000_000).map(|_| Nothing).collect();
    let b = Box::new(());
    let arr: Box<[u64; 0]> = Box::new([]);
    assert_eq!(v.len(), 1_000_000);
    assert_eq!(*b, ());
    assert!(arr.is_empty());
    let after = apexalloc::stats::thread().thread_allocated;
    assert_eq!(after, before, "a zero-sized value allocated");
}

#[test]
fn alloc_zeroed_zeroes_reused_memory() {
    for size in [16usize, 48, 1000, 70_000, 1 << 20] {
        for align in [8usize, 16, 64, 4096] {
            let layout = Layout::from_size_align(size, align).unwrap();
            unsafe {
                // Dirty a chunk of this class, free it, and ask for zeroed memory of the same shape.
                let dirty = alloc(layout);
                dirty.write_bytes(0xab, size);
                dealloc(dirty, layout);
                let z = alloc_zeroed(layout);
                assert!(!z.is_null());
                assert_eq!(z as usize % align, 0);
                assert!((0..size).all(|i| *z.add(i) == 0), "alloc_zeroed({size}, {align}) gave dirty bytes");
                dealloc(z, layout);
            }
        }
    }
    let v = vec![0u64; 100_000]; // vec! of zeros goes through alloc_zeroed
    assert!(v.iter().all(|x| *x == 0));
}

#[test]
fn impossible_requests_fail_with_null() {
    let layout = Layout::from_size_align(isize::MAX as usize - 4096, 16).unwrap();
    unsafe {
        assert!(alloc(layout).is_null());
        assert!(alloc_zeroed(layout).is_null());
        let big_aligned = Layout::from_size_align(isize::MAX as usize - (1 << 21), 1 << 20).unwrap();
        assert!(alloc(big_aligned).is_null());
        let p = alloc(Layout::from_size_align(64, 64).unwrap());
        assert!(realloc(p, Layout::from_size_align(64, 64).unwrap(), isize::MAX as usize - 8192).is_null());
        dealloc(p, Layout::from_size_align(64, 64).unwrap()); // p is still valid after a failed realloc
    }
    let mut v: Vec<u8> = Vec::new();
    assert!(v.try_reserve(isize::MAX as usize - 100).is_err());
}
