//! The workloads of apexalloc_bench with the mimalloc allocator as #[global_allocator].

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    apexalloc_bench::run("mimalloc");
}
