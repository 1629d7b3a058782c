//! ApexAlloc as the global allocator, and what it says about the program's memory.
//!
//! `cargo run --example global`

use apexalloc::{ctl, stats, ApexAlloc, Format};
use std::collections::BTreeMap;

#[global_allocator]
static GLOBAL: ApexAlloc = ApexAlloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let words: Vec<String> = (0..100_000).map(|i| format!("word-{}", i * 7919 % 100_003)).collect();
    let mut counts = BTreeMap::new();
    for w in &words {
        *counts.entry(w.as_str()).or_insert(0usize) += 1;
    }

    let s = stats::global();
    println!("ApexAlloc {}: {} distinct words", apexalloc::version(), counts.len());
    println!("  allocated {:>10} bytes in live objects", s.allocated);
    println!("  mapped    {:>10} bytes from the OS (peak {})", s.mapped, s.mapped_peak);
    println!("  waste     {:>9.1}% (1 - requested / handed out)",
             100.0 * (1.0 - s.requested as f64 / s.requested_usable.max(1) as f64));
    println!("  this thread handed out {} bytes", stats::thread().thread_allocated);
    let busiest = stats::bins().into_iter().enumerate().max_by_key(|(_, b)| b.count).unwrap();
    println!("  busiest size class: {} ({} B chunks, {} objects)", busiest.0, busiest.1.chunk_size, busiest.1.count);
    println!("  decay: {} ms", ctl::read::<usize>("opt.decay_ms")?);

    drop(counts);
    drop(words);
    ctl::run("heap.collect")?;
    apexalloc::print_stats(&mut std::io::stdout().lock(), Format::Text)?;
    Ok(())
}
