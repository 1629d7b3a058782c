//! With the `override` feature, this crate's copy also replaces the C library's malloc family.
//! (Without it the test is empty: `cargo test --features override --test override` runs it; CTest
//! does so as rust_override.)
#![cfg(feature = "override")]

use std::ffi::c_void;

extern "C" {
    fn malloc(size: usize) -> *mut c_void;
    fn calloc(count: usize, size: usize) -> *mut c_void;
    fn realloc(p: *mut c_void, size: usize) -> *mut c_void;
    fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32;
    fn free(p: *mut c_void);
    fn strdup(s: *const std::ffi::c_char) -> *mut std::ffi::c_char;
}

#[test]
fn the_c_library_malloc_family_is_apexalloc() {
    unsafe {
        let before = apexalloc::stats::thread().thread_allocated;
        let p = malloc(1000);
        assert!(apexalloc::owns(p), "malloc is not served by the crate's copy");
        let q = realloc(p, 100_000);
        assert!(apexalloc::owns(q));
        let c = calloc(10, 10);
        assert!(apexalloc::owns(c));
        let mut a = std::ptr::null_mut();
        assert_eq!(posix_memalign(&mut a, 4096, 10), 0);
        assert!(apexalloc::owns(a) && a as usize % 4096 == 0);
        // glibc's own allocations (strdup calls malloc inside libc) come here too.
        let s = strdup(c"interposed".as_ptr());
        assert!(apexalloc::owns(s));
        assert!(apexalloc::stats::thread().thread_allocated >= before + 100_000);
        for x in [q, c, a, s.cast::<c_void>()] {
            free(x);
        }
        assert_eq!(apexalloc::ctl::read::<String>("opt.tls_model").unwrap(), "initial-exec");
    }
}
