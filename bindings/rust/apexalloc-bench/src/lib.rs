//! The workloads every allocator's bench binary runs, the same code for all of them.
//!
//! Each is a typical pattern of Rust programs: a `Vec` growing by push, `BTreeMap` and
//! `HashMap` churn (inserts and removals with heap-allocated values), `String` building, and a
//! multithreaded hand-off of `Box`es (allocated on one thread, freed on another).

use criterion::{BenchmarkId, Criterion};
use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::sync::mpsc;
use std::time::Duration;

/// Pushes into `Vec`s that start empty: one long one and many short ones.
pub fn vec_growth() -> usize {
    let mut long = Vec::new();
    for i in 0..100_000u64 {
        long.push(i);
    }
    let mut total = long.len();
    for n in 0..1_000u64 {
        let mut short = Vec::new();
        for i in 0..(n % 100) {
            short.push(i);
        }
        total += black_box(short).len();
    }
    total
}

/// Inserts 20 000 keys with small `Vec` values, removes half, inserts them again.
pub fn btreemap_churn() -> usize {
    let mut map = BTreeMap::new();
    for i in 0..20_000u64 {
        map.insert(i.wrapping_mul(0x9e37_79b9), vec![i as u8; (i % 64) as usize]);
    }
    for i in (0..20_000u64).step_by(2) {
        map.remove(&i.wrapping_mul(0x9e37_79b9));
    }
    for i in (0..20_000u64).step_by(2) {
        map.insert(i.wrapping_mul(0x9e37_79b9), vec![1; 24]);
    }
    map.len()
}

/// The same churn on a `HashMap` with `String` keys.
pub fn hashmap_churn() -> usize {
    let mut map = HashMap::new();
    for i in 0..20_000u64 {
        map.insert(format!("key-{i}"), vec![i as u8; (i % 100) as usize]);
    }
    for i in (0..20_000u64).step_by(3) {
        map.remove(&format!("key-{i}"));
    }
    for i in 0..5_000u64 {
        map.insert(format!("new-{i}"), vec![0; 40]);
    }
    map.len()
}

/// Builds strings piece by piece, formats, joins.
pub fn string_building() -> usize {
    let mut parts = Vec::with_capacity(5_000);
    for i in 0..5_000 {
        let mut s = String::new();
        for j in 0..(i % 20) {
            s.push_str("word");
            s.push(char::from(b'a' + (j % 26) as u8));
        }
        s += &format!("-{i}");
        parts.push(s);
    }
    parts.join(" ").len()
}

/// Two threads each send 20 000 `Box`es, in batches of 500, to a consumer thread that frees
/// them: every free is a cross-thread free.
pub fn box_handoff() -> usize {
    let (tx, rx) = mpsc::sync_channel::<Vec<Box<[u64; 8]>>>(8);
    let producers: Vec<_> = (0..2u64)
        .map(|t| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for b in 0..40u64 {
                    let batch: Vec<Box<[u64; 8]>> = (0..500).map(|i| Box::new([t + b + i; 8])).collect();
                    tx.send(batch).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let consumer = std::thread::spawn(move || rx.iter().map(|batch| batch.len()).sum::<usize>());
    for p in producers {
        p.join().unwrap();
    }
    consumer.join().unwrap()
}

/// A workload: its name and the function run once per iteration.
type Workload = (&'static str, fn() -> usize);

/// Every workload, under the bench ID `<workload>/<allocator>`.
pub fn run(allocator: &str) {
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let workloads: [Workload; 5] = [
        ("vec_growth", vec_growth),
        ("btreemap_churn", btreemap_churn),
        ("hashmap_churn", hashmap_churn),
        ("string_building", string_building),
        ("box_handoff", box_handoff),
    ];
    for (name, f) in workloads {
        let mut group = c.benchmark_group(name);
        group.bench_function(BenchmarkId::from_parameter(allocator), |b| b.iter(|| black_box(f())));
        group.finish();
    }
    c.final_summary();
}
