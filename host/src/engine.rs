//! The node's wasmtime [`Engine`]: component model, pooling allocator sized from the
//! configuration, epoch interruption (driven by [`crate::epoch`]), and Cranelift's
//! per-function compile cache ([`fn_cache`]).

pub(crate) mod fn_cache;

use std::sync::Arc;
use std::time::Duration;

use fn_cache::{FN_CACHE_BYTES, FnCache};

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Strategy};

use crate::config::{Compiler, MAX_MEMORY_BYTES, NodeConfig};
use crate::error::StartError;

/// Core instances a component may have: the guest's main module plus the canonical-ABI shims
/// that wit-component adds.
const CORE_INSTANCES_PER_COMPONENT: u32 = 8;
/// Tables a component may have (main module plus shim tables).
const TABLES_PER_COMPONENT: u32 = 4;
/// Linear memories a component may have: components from other toolchains may carry a
/// second memory (an adapter's), so allow two.
const MEMORIES_PER_COMPONENT: u32 = 2;
/// Elements per table: enough for large guests' function tables.
const TABLE_ELEMENTS: usize = 100_000;
/// Dirty bytes of a linear memory (and of a table) kept resident in its pool slot after its
/// process ends: a small process's whole working set, so reuse is fault-free, while a full
/// pool of ended processes holds at most `max_processes` times this.
const KEEP_RESIDENT: usize = 64 << 10;

/// The largest memory limit a process of this node may have: the node-wide maximum, or less
/// when memories reserve less address space.
pub(crate) fn max_memory_bytes(config: &NodeConfig) -> u64 {
    config.memory_reservation.map_or(MAX_MEMORY_BYTES, |r| r.min(MAX_MEMORY_BYTES))
}

/// The epoch ticks a node accepts: a tick of zero would make the ticker thread spin a CPU,
/// and one of hours would let a guest hold its worker that long (and a stopping node wait
/// for the ticker's sleep).
const EPOCH_TICKS: std::ops::RangeInclusive<Duration> = Duration::from_micros(10)..=Duration::from_secs(1);

/// Builds the engine for `config`, with its function cache when it compiles with Cranelift.
pub(crate) fn build(config: &NodeConfig) -> Result<(Engine, Option<Arc<FnCache>>), StartError> {
    if !EPOCH_TICKS.contains(&config.epoch_tick) {
        return Err(StartError::BadConfig(format!(
            "an epoch tick of {:?} is outside {:?} to {:?} (a tick of zero would spin a CPU, a \
             long one would let a guest hold its worker that long)",
            config.epoch_tick,
            EPOCH_TICKS.start(),
            EPOCH_TICKS.end()
        )));
    }
    let n = config.max_processes.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(CORE_INSTANCES_PER_COMPONENT / 2))
        .total_memories(n.saturating_add(n / 8))
        .total_tables(n.saturating_mul(TABLES_PER_COMPONENT / 2))
        .total_stacks(n)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .table_elements(TABLE_ELEMENTS)
        .max_memory_size(max_memory_bytes(config) as usize);
    // A slot whose process ended keeps the pages it dirtied (up to a limit) and gets them
    // reset in place, found with the PAGEMAP_SCAN ioctl where the kernel has it (6.7+): the
    // next process in that slot takes no page faults, and ending one needs no madvise and
    // TLB shootdown. Measured on W4a (spawn + exit): 22k -> 38k spawns/s.
    pool.linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        .pagemap_scan(Enabled::Auto);

    let mut cfg = Config::new();
    cfg.strategy(match config.compiler {
        Compiler::Cranelift => Strategy::Cranelift,
        Compiler::Winch => Strategy::Winch,
    });
    cfg.wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(config.fuel)
        .memory_init_cow(config.copy_on_write)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        // On one CPU, compiling a module's functions on rayon's pool only adds the hand-offs
        // to its thread: W5b's compile of a new 36 KB guest (all functions from the
        // function cache) took 5.8 ms instead of 6.0 on one pinned CPU.
        .parallel_compilation(std::thread::available_parallelism().is_ok_and(|n| n.get() > 1));
    // For profiling guests: perf then names their functions (README, "Where the time goes").
    if std::env::var_os("SPORE_PERF_MAP").is_some() {
        cfg.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    // Winch has no such cache; it compiles fast anyway.
    let fn_cache = (config.compiler == Compiler::Cranelift).then(|| Arc::new(FnCache::new(FN_CACHE_BYTES)));
    if let Some(cache) = &fn_cache {
        cfg.enable_incremental_compilation(Arc::clone(cache) as Arc<dyn wasmtime::CacheStore>)
            .map_err(|e| StartError::Engine(format!("{e:#}")))?;
    }
    if let Some(reservation) = config.memory_reservation {
        cfg.memory_reservation(reservation);
        cfg.memory_guard_size(64 << 10);
    }
    let engine = Engine::new(&cfg).map_err(|e| StartError::Engine(format!("{e:#}")))?;
    Ok((engine, fn_cache))
}
