//! Draws the heap map of a program with a few threads and heaps as an SVG picture.
//!
//! `cargo run --example heap_map -- heap.svg` (default: heap-map.svg in the working directory)

use allocator_api2::vec::Vec as HeapVec;
use apexalloc::{ApexAlloc, Format, Heap};
use std::fs::File;
use std::io::BufWriter;

#[global_allocator]
static GLOBAL: ApexAlloc = ApexAlloc;

fn main() -> std::io::Result<()> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "heap-map.svg".into());

    // Working sets of different shapes: small strings (half freed), medium buffers, large ones.
    let strings: Vec<String> = (0..20_000).map(|i| "x".repeat(20 + i % 200)).enumerate()
        .filter(|(i, _)| i % 2 == 0).map(|(_, s)| s).collect();
    let workers: Vec<Vec<Vec<u8>>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|t| s.spawn(move || (0..200).map(|i| vec![t as u8; 3000 + (i * 97 % 50_000)]).collect()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let heap = Heap::new();
    let mut in_heap = HeapVec::new_in(&heap);
    in_heap.extend((0..100_000u64).map(|i| i * i));
    let huge = vec![1u8; 6 << 20];

    let mut out = BufWriter::new(File::create(&path)?);
    apexalloc::heap_map(&mut out, Format::Svg)?;
    drop(out);
    println!("wrote {path}: {} strings, {} worker buffers, {} u64 in a heap, one {} MiB object",
             strings.len(), workers.iter().map(Vec::len).sum::<usize>(), in_heap.len(), huge.len() >> 20);
    Ok(())
}
