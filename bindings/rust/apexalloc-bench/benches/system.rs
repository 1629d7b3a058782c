//! The workloads of apexalloc_bench with the system allocator as #[global_allocator].

#[global_allocator]
static GLOBAL: std::alloc::System = std::alloc::System;

fn main() {
    apexalloc_bench::run("system");
}
