//! Running a guest process: a fresh `Store` with the process's limits, instantiation from
//! the module's `InstancePre`, and the `start` export driven as a tokio task until it
//! returns, traps, exits or is killed.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;

use bytes::Bytes;
use wasmtime::{Store, Trap, WasmBacktrace};

use super::ExitReason;
use super::entry::ProcessEntry;
use super::state::{Grants, MemoryLimitExceeded, ProcState};
use crate::cache::LoadedModule;
use crate::node::NodeInner;

/// Fuel consumed between yields when fuel metering is on: about a millisecond of compute, so
/// yielding costs well under 1% (TECH-NOTES pitfall 5).
const FUEL_YIELD_INTERVAL: u64 = 10_000_000;

/// Everything a new guest process starts with.
pub(crate) struct Launch {
    pub module: Arc<LoadedModule>,
    pub entry: String,
    pub args: Bytes,
    pub grants: Grants,
    pub memory_limit: u64,
    pub fuel: Option<u64>,
    pub on_ready: OnReady,
}

impl Launch {
    /// The launch out of its box, the box freed.
    #[expect(clippy::boxed_local, reason = "takes the box to free it")]
    fn unbox(launch: Box<Self>) -> Self {
        *launch
    }
}

/// What runs once the process is instantiated, or has failed to be, or was killed first:
/// always before the process's exit signals. A remote spawner's answer goes out then, so it
/// usually shares a datagram (and the spawner one wake-up) with what the child sends first.
#[derive(Default)]
pub(crate) struct OnReady(Option<Box<dyn FnOnce() + Send>>);

impl OnReady {
    /// Runs `f` when the process is ready.
    pub fn new(f: impl FnOnce() + Send + 'static) -> Self {
        Self(Some(Box::new(f)))
    }
}

impl Drop for OnReady {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// Lets a local child that was just spawned run before its parent goes on, once.
///
/// A parent that spawns in a loop would otherwise run its whole time slice (an epoch tick)
/// before any child ran, and children would pile up by thousands, each holding a cold pool
/// slot: W4a (spawn + exit) ran at 55 k spawns/s with the node's pool full most of the time.
/// Run at once, a child that ends frees its slot for the next spawn while the slot's pages
/// are still in the cache: 70-80 k spawns/s.
///
/// The task wakes itself and returns pending, so the runtime queues it behind the child
/// (which a spawn from a worker puts first). `tokio::task::yield_now` would defer the
/// wake-up until the worker had polled its I/O driver, one `epoll_wait` per spawn.
pub(crate) async fn yield_to_child() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}

/// A guest asked to end itself with `process.exit`.
#[derive(Debug, thiserror::Error)]
#[error("process exited: {0}")]
pub(crate) struct ExitRequest(pub ExitReason);

/// Runs the process to its end, then releases its slot and tells its links and monitors.
/// `launch` is boxed because an async fn keeps its arguments for its whole life, and this
/// one's future (with `run_guest`'s, which keeps them too) is the process's task: inline,
/// the 160 bytes of `Launch`, twice, made every live process's task 256 bytes larger (W4b).
pub(crate) async fn run(node: Arc<NodeInner>, me: Arc<ProcessEntry>, launch: Box<Launch>) {
    let reason = {
        let mut guest = pin!(node.activity.track(run_guest(Arc::clone(&node), Arc::clone(&me), launch)));
        let mut left = None;
        // A kill first, as it may come while the guest runs on.
        let ended = poll_fn(|cx| match me.poll_killed(&mut left, cx) {
            Poll::Ready(killed) => Poll::Ready(Err(killed)),
            Poll::Pending => guest.as_mut().poll(cx).map(Ok),
        })
        .await;
        match ended {
            Err(killed) => killed,
            Ok((reason, store)) => {
                // Resetting the slot (dropping `store`) takes a few µs. A process that talks
                // to another node lets the connection's writer run first, so that what it
                // sent last leaves that much sooner. In interleaved A/B runs: W5 (a remote
                // spawn whose child sends home and ends) p50 6-20 µs lower, about +13%
                // spawns/s; W7 +4-20% calls/s. Always yielding would cost local spawns 10%
                // (W4a). The reason is settled here: a kill arriving now is too late.
                if me.talks_remote.load(Ordering::Relaxed) {
                    tokio::task::yield_now().await;
                }
                drop(store);
                reason
            }
        }
    };
    me.unwatch_kills();
    // The store (and with it the pool slot) is gone once the block above has finished.
    node.table.guests.fetch_sub(1, Ordering::AcqRel);
    node.output_acks.remove(&me.pid);
    node.process_ended(&me, reason);
}

/// Runs the guest to its end; returns why it ended, and its store for the caller to drop.
async fn run_guest(
    node: Arc<NodeInner>,
    me: Arc<ProcessEntry>,
    launch: Box<Launch>,
) -> (ExitReason, Store<ProcState>) {
    // Moved out through a call, which frees the box now: a box moved out of in place here
    // would be freed only when this future ends.
    let Launch { module, entry, args, grants, memory_limit, fuel, on_ready } = Launch::unbox(launch);
    let pre = module.pre.clone();
    let state = ProcState::new(Arc::clone(&node), me, module, grants, memory_limit);
    let mut store = Store::new(&node.engine, state);
    store.limiter(|s| &mut s.limiter);
    crate::epoch::yield_at_deadlines(&mut store);
    if node.config.fuel {
        let configured = store
            .set_fuel(fuel.unwrap_or(u64::MAX))
            .and_then(|()| store.fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL)));
        if let Err(e) = configured {
            return (ExitReason::Limit(format!("cannot set fuel: {e}")), store);
        }
    }
    // Boxed: instantiating needs a larger future than running (1.2 KB against 0.4 KB), and
    // inline it would size the process's task, and so every live process, for good.
    let instantiated = {
        // Moved in here, so that its room in the future ends with the instantiation: alive
        // across the guest's run, it made every live process's task 128 bytes larger (W4b).
        let pre = pre;
        Box::pin(pre.instantiate_async(&mut store)).await
    };
    drop(on_ready);
    let guest = match instantiated {
        Ok(guest) => guest,
        Err(e) => return (reason_of(&e), store),
    };
    let reason = match guest.call_start(&mut store, &entry, &args).await {
        Ok(()) => ExitReason::Normal,
        Err(e) => reason_of(&e),
    };
    (reason, store)
}

/// The exit reason an error from instantiating or running a guest stands for.
pub(crate) fn reason_of(e: &wasmtime::Error) -> ExitReason {
    if let Some(ExitRequest(reason)) = e.downcast_ref::<ExitRequest>() {
        return reason.clone();
    }
    if let Some(limit) = e.downcast_ref::<MemoryLimitExceeded>() {
        return ExitReason::Limit(limit.to_string());
    }
    if let Some(trap) = e.downcast_ref::<Trap>() {
        return match trap {
            Trap::OutOfFuel => ExitReason::Limit("fuel budget exhausted".into()),
            // wasmtime says "wasm trap: ..."; the reason already reads "trap: ...".
            trap => {
                let text = trap.to_string();
                ExitReason::Trap(text.strip_prefix("wasm trap: ").unwrap_or(&text).to_owned())
            }
        };
    }
    // A host call refused what the guest gave it (memory it does not have, text that is not
    // UTF-8): the causes, without the wasm backtrace wasmtime adds (at debug level below).
    tracing::debug!("guest failed: {e:?}");
    let backtrace = e.downcast_ref::<WasmBacktrace>().map(ToString::to_string);
    let causes: Vec<String> =
        e.chain().map(ToString::to_string).filter(|cause| Some(cause) != backtrace.as_ref()).collect();
    ExitReason::Trap(causes.join(": "))
}
