//! The committed bindings must be exactly what bindgen makes of the header today.

#[test]
fn bindings_match_header() {
    let header = apexalloc_sys_gen::header_path();
    let path = apexalloc_sys_gen::bindings_path();
    let fresh = apexalloc_sys_gen::generate(&header).expect("bindgen");
    let committed = std::fs::read_to_string(&path).expect("committed bindings.rs");
    if committed != fresh {
        let first = committed
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(fresh.lines().count()));
        panic!(
            "{} is out of date with {} (first difference at line {}: committed {:?}, header gives {:?}); \
             run `cargo run -p apexalloc-sys-gen` in bindings/rust",
            path.display(),
            header.display(),
            first + 1,
            committed.lines().nth(first),
            fresh.lines().nth(first)
        );
    }
}

/// The generator sees a function the moment the header gains one (the drift check is real).
#[test]
fn generator_follows_a_new_declaration() {
    let dir = std::env::temp_dir().join(format!("apexalloc-gen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let original = std::fs::read_to_string(apexalloc_sys_gen::header_path()).unwrap();
    let changed = original.replace(
        "int apex_version(void);",
        "int apex_version(void);\nint apex_added_for_the_test(size_t n);",
    );
    assert_ne!(original, changed, "the header no longer declares apex_version");
    let header = dir.join("apexalloc.h");
    std::fs::write(&header, changed).unwrap();
    let out = apexalloc_sys_gen::generate(&header).expect("bindgen");
    std::fs::remove_dir_all(&dir).ok();
    assert!(out.contains("pub fn apex_added_for_the_test(n: usize)"), "{out}");
    let committed = std::fs::read_to_string(apexalloc_sys_gen::bindings_path()).unwrap();
    assert_ne!(out, committed);
}
