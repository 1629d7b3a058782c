//! Statistics that move as expected, every CtlError variant, the whole key registry, and the
//! text / JSON / SVG output. ApexAlloc is the global allocator here, so std's allocations count.

use std::io;
use std::sync::Mutex;

use apexalloc::ctl::{self, CtlError, CtlType};
use apexalloc::{stats, ApexAlloc, Format, Heap};

#[global_allocator]
static GLOBAL: ApexAlloc = ApexAlloc;

/// The tests that compare process-wide figures before and after run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn thread_and_global_statistics_move_with_allocations() {
    let _g = serial();
    let t0 = stats::thread();
    let g0 = stats::global();
    let v: Vec<u8> = vec![1; 3 << 20];
    let t1 = stats::thread();
    let g1 = stats::global();
    assert!(t1.thread_allocated - t0.thread_allocated >= 3 << 20);
    assert!(t1.allocated >= t0.allocated + (3 << 20), "{t0:?} -> {t1:?}");
    assert!(g1.allocated >= g0.allocated + (3 << 20) - (1 << 20));
    assert!(g1.mapped >= g1.allocated && g1.mapped_peak >= g1.mapped);
    assert!(g1.requested >= g0.requested + (3 << 20));
    assert!(g1.requested_usable >= g1.requested);
    assert!(g1.large_count + g1.huge_count >= 1);
    assert!(g1.heaps >= 1 && g1.superblocks >= 1 && g1.metadata > 0 && g1.active > 0);
    drop(v);
    let t2 = stats::thread();
    assert!(t2.thread_deallocated - t1.thread_deallocated >= 3 << 20);
    assert!(t2.allocated + (3 << 20) <= t1.allocated);
    // ctl reads the same figures.
    let via_ctl: usize = ctl::read("thread.allocated").unwrap();
    assert!(via_ctl >= t2.thread_allocated);
}

#[test]
fn bin_statistics_count_objects_of_their_class() {
    let _g = serial();
    let bins = stats::bins();
    assert_eq!(bins.len(), stats::BIN_COUNT);
    assert!(stats::bin(stats::BIN_COUNT).is_none());
    let class = (1..stats::BIN_COUNT).find(|&i| bins[i].chunk_size >= 200).unwrap();
    let size = bins[class].chunk_size;
    assert_eq!(ctl::read::<usize>(&format!("stats.bins.{class}.size")).unwrap(), size);
    let before = stats::bin(class).unwrap().count;
    let objects: Vec<Box<[u8]>> = (0..5000).map(|_| vec![0u8; size].into_boxed_slice()).collect();
    let during = stats::bin(class).unwrap();
    assert!(during.count >= before + 5000, "bin {class} ({size} B): {before} -> {}", during.count);
    assert!(during.blocks >= 1);
    assert_eq!(ctl::read::<usize>(&format!("stats.bins.{class}.count")).unwrap(), during.count);
    drop(objects);
    assert!(stats::bin(class).unwrap().count + 5000 <= during.count);
}

#[test]
fn heap_statistics_are_exact() {
    let heap = Heap::new();
    let layout = std::alloc::Layout::from_size_align(1000, 16).unwrap();
    let ptrs: Vec<_> = (0..100).map(|_| heap.alloc(layout).unwrap()).collect();
    let s = heap.stats();
    let usable: usize = ptrs.iter().map(|p| apexalloc::usable_size(p.as_ptr())).sum();
    assert_eq!(s.allocated, usable);
    assert_eq!(s.thread_allocated, usable);
    assert!(s.blocks >= 1);
    for p in ptrs {
        unsafe { heap.free(p, layout) };
    }
    let s = heap.stats();
    assert_eq!(s.allocated, 0);
    assert_eq!(s.thread_deallocated, usable);
}

#[cfg(feature = "serde")]
#[test]
fn snapshots_serialize() {
    let s = stats::global();
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains("\"allocated\":"));
    let back: apexalloc::Stats = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
    let b = stats::bin(3).unwrap();
    assert_eq!(serde_json::from_str::<apexalloc::BinStats>(&serde_json::to_string(&b).unwrap()).unwrap(), b);
}

#[test]
fn ctl_reads_writes_and_runs() {
    let _g = serial();
    assert_eq!(ctl::read::<String>("version").unwrap(), apexalloc::version());
    assert_eq!(ctl::read::<String>("opt.tls_model").unwrap(),
               if cfg!(feature = "override") { "initial-exec" } else { "global-dynamic" });
    let _: bool = ctl::read("opt.show_stats").unwrap();
    assert!(ctl::read::<usize>("stats.allocated").unwrap() > 0);

    let old: usize = ctl::read("opt.superblock_cache").unwrap();
    ctl::write("opt.superblock_cache", old + 3).unwrap();
    assert_eq!(ctl::read::<usize>("opt.superblock_cache").unwrap(), old + 3);
    ctl::write("opt.superblock_cache", old).unwrap();
    assert_eq!(ctl::read::<usize>("opt.superblock_cache").unwrap(), old);

    let show: bool = ctl::read("opt.show_stats").unwrap();
    ctl::write("opt.show_stats", !show).unwrap();
    assert_eq!(ctl::read::<bool>("opt.show_stats").unwrap(), !show);
    ctl::write("opt.show_stats", show).unwrap();

    ctl::run("heap.collect").unwrap();
    ctl::run("stats.reset").unwrap();
    assert_eq!(stats::global().mapped_peak, stats::global().mapped.max(stats::global().mapped_peak));
}

#[test]
fn every_ctl_error_names_its_key() {
    let unknown = ctl::read::<usize>("stats.no_such_key").unwrap_err();
    assert_eq!(unknown, CtlError::UnknownKey { key: "stats.no_such_key".into() });
    assert_eq!(ctl::read::<usize>("stats.bins.100000.count").unwrap_err(),
               CtlError::UnknownKey { key: "stats.bins.100000.count".into() });
    assert_eq!(ctl::run("no.such.command").unwrap_err(), CtlError::UnknownKey { key: "no.such.command".into() });
    assert_eq!(ctl::read::<usize>("nul\0inside").unwrap_err(), CtlError::UnknownKey { key: "nul\0inside".into() });

    let wrong = ctl::read::<usize>("version").unwrap_err();
    assert_eq!(wrong, CtlError::WrongType { key: "version".into(), key_type: CtlType::String, requested: CtlType::Size });
    assert!(matches!(ctl::read::<String>("stats.allocated"),
                     Err(CtlError::WrongType { key_type: CtlType::Size, requested: CtlType::String, .. })));
    assert!(matches!(ctl::read::<bool>("stats.bins.2.count"), Err(CtlError::WrongType { .. })));
    assert!(matches!(ctl::read::<usize>("heap.collect"),
                     Err(CtlError::WrongType { key_type: CtlType::Command, .. })));
    assert!(matches!(ctl::run("stats.allocated"),
                     Err(CtlError::WrongType { key_type: CtlType::Size, requested: CtlType::Command, .. })));
    assert!(matches!(ctl::write("opt.show_stats", 1usize), Err(CtlError::WrongType { .. })));

    let invalid = ctl::write("opt.superblock_cache", 1usize << 40).unwrap_err();
    assert_eq!(invalid, CtlError::InvalidValue { key: "opt.superblock_cache".into() });

    let ro = ctl::write("stats.allocated", 5usize).unwrap_err();
    assert_eq!(ro, CtlError::ReadOnly { key: "stats.allocated".into() });
    assert!(matches!(ctl::write("opt.secure", 2usize), Err(CtlError::ReadOnly { .. })));

    for e in [unknown, wrong, invalid, ro] {
        let text = e.to_string();
        assert!(text.contains(e.key()), "{text}");
        let _: &dyn std::error::Error = &e;
    }
}

#[test]
fn every_key_of_the_registry_reads_with_its_type() {
    let keys: Vec<_> = ctl::keys().collect();
    assert_eq!(keys.len(), unsafe { apexalloc::sys::apex_ctl_count() });
    let find = |n: &str| keys.iter().find(|k| k.name == n).unwrap_or_else(|| panic!("no key {n}"));
    assert_eq!(find("stats.allocated").ty, CtlType::Size);
    assert_eq!(find("heap.collect").ty, CtlType::Command);
    assert!(find("opt.decay_ms").writable);
    assert_eq!(find("opt.decay_ms").env.as_deref(), Some("APEX_DECAY_MS"));
    assert_eq!(find("stats.bins.<i>.count").index_count, stats::BIN_COUNT);
    for key in &keys {
        assert!(!key.description.is_empty(), "{} has no description", key.name);
        let name = key.name.replace("<i>", "0");
        let result = match key.ty {
            CtlType::Size => ctl::read::<usize>(&name).map(drop),
            CtlType::Bool => ctl::read::<bool>(&name).map(drop),
            CtlType::String => ctl::read::<String>(&name).map(drop),
            CtlType::Command => continue, // run above; commands have side effects
        };
        assert!(result.is_ok(), "{name}: {result:?}");
        if key.index_count > 0 {
            let past = key.name.replace("<i>", &key.index_count.to_string());
            assert!(matches!(ctl::read::<usize>(&past), Err(CtlError::UnknownKey { .. }) | Err(CtlError::WrongType { .. })), "{past}");
        }
    }
}

#[test]
fn print_stats_and_heap_map_write_every_format() {
    let _keep = vec![0u8; 100_000];
    let mut text = Vec::new();
    apexalloc::print_stats(&mut text, Format::Text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("statistics") && text.contains("allocated"), "{text}");

    let mut json = Vec::new();
    apexalloc::print_stats(&mut json, Format::Json).unwrap();
    let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert!(value.is_object());

    let mut svg = Vec::new();
    apexalloc::heap_map(&mut svg, Format::Svg).unwrap();
    let svg = String::from_utf8(svg).unwrap();
    assert!(svg.starts_with("<svg") || svg.contains("<svg"), "{}", &svg[..svg.len().min(200)]);
    assert!(svg.trim_end().ends_with("</svg>"));

    let mut map = Vec::new();
    apexalloc::heap_map(&mut map, Format::Json).unwrap();
    let map: serde_json::Value = serde_json::from_slice(&map).unwrap();
    assert!(map["superblocks"].as_array().is_some_and(|a| !a.is_empty()));

    let e = apexalloc::print_stats(&mut Vec::new(), Format::Svg).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let e = apexalloc::heap_map(&mut Vec::new(), Format::Text).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
}

/// A writer that fails after `room` bytes.
struct Full {
    room: usize,
    calls_after_error: usize,
}

impl io::Write for Full {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.room == 0 {
            self.calls_after_error += 1;
            return Err(io::Error::new(io::ErrorKind::StorageFull, "full"));
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn writer_errors_and_panics_come_back_to_the_caller() {
    let mut full = Full { room: 100, calls_after_error: 0 };
    let e = apexalloc::print_stats(&mut full, Format::Text).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::StorageFull);
    assert_eq!(full.calls_after_error, 1, "kept writing after the first error");

    struct Panics;
    impl io::Write for Panics {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            panic!("writer panicked");
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let caught = std::panic::catch_unwind(|| apexalloc::heap_map(&mut Panics, Format::Svg));
    let payload = caught.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"writer panicked"));
}

#[test]
fn owns_usable_size_and_collect() {
    let b = Box::new([0u64; 10]);
    assert!(apexalloc::owns(&*b as *const [u64; 10]));
    assert!(apexalloc::usable_size(&*b as *const [u64; 10]) >= 80);
    let on_stack = 5u32;
    assert!(!apexalloc::owns(&on_stack as *const u32));
    assert!(!apexalloc::owns(unsafe { (&*b as *const [u64; 10] as *const u8).add(16) }), "interior pointer");
    assert!(!apexalloc::owns(std::ptr::null::<u8>()));
    // A thread that allocated and exited leaves its heap behind; collect() gives its memory back.
    std::thread::spawn(|| drop(vec![0u8; 100_000])).join().unwrap();
    apexalloc::collect();
    assert_eq!(apexalloc::version(), format!("{}.{}.{}", apexalloc::sys::APEX_VERSION_MAJOR,
               apexalloc::sys::APEX_VERSION_MINOR, apexalloc::sys::APEX_VERSION_PATCH));
}
