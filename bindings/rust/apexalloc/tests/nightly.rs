//! With the `nightly` feature (nightly compiler), `&Heap` is a `core::alloc::Allocator`, so the
//! standard library's own collections live in a heap. CTest runs this as rust_nightly when a
//! nightly toolchain is installed: `cargo +nightly test -p apexalloc --features nightly --test nightly`.
#![cfg(feature = "nightly")]
#![feature(allocator_api)]

use apexalloc::Heap;
use std::collections::VecDeque;

#[test]
fn std_collections_live_in_a_heap() {
    let heap = Heap::new();
    let mut v: Vec<u64, &Heap> = Vec::new_in(&heap);
    v.extend(0..10_000);
    let b: Box<[u8; 100], &Heap> = Box::new_in([9; 100], &heap);
    let mut q: VecDeque<u32, &Heap> = VecDeque::new_in(&heap);
    q.extend(0..1000);
    assert!(apexalloc::owns(v.as_ptr()));
    assert!(heap.stats().allocated >= 80_000 + 100 + 4000);
    assert_eq!(v[9999] + u64::from(b[99]) + u64::from(q[999]), 9999 + 9 + 999);
    drop((v, b, q));
    assert_eq!(heap.stats().allocated, 0);

    let limited = Heap::with_limit(1 << 20);
    let mut big: Vec<u8, &Heap> = Vec::new_in(&limited);
    assert!(big.try_reserve(2 << 20).is_err());
}
