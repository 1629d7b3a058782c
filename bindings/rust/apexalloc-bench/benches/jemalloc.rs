//! The workloads of apexalloc_bench with the jemalloc allocator as #[global_allocator].

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    apexalloc_bench::run("jemalloc");
}
