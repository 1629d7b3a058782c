//! The workloads of apexalloc_bench with the apexalloc allocator as #[global_allocator].

#[global_allocator]
static GLOBAL: apexalloc::ApexAlloc = apexalloc::ApexAlloc;

fn main() {
    apexalloc_bench::run("apexalloc");
}
