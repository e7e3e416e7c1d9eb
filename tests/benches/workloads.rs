//! The benchmark workloads of shared/bench/WORKLOADS.md on Spore nodes: W1 (local ping-pong),
//! W4a (spawns of processes that exit at once), W4b (spawns of processes that stay alive, and
//! memory per process), and across two nodes W2 (remote ping-pong by registered name), W3 and
//! W3b (remote throughput, 64-byte and 64 KiB payloads), W5 (remote spawn), W5b (shipping,
//! loading and first spawn of never-seen modules), W6 (connection setup, wrong-cookie
//! rejection) and W7 (calls with `rpc::multicall`); plus the loopback floor (64-byte UDP and
//! TCP round trips), W2's QUIC floor (the same round trips between two of Spore's transports,
//! [`quic_floor`]) and W4a's wasmtime floor (its child instantiated, called and dropped on
//! the node's engine, without Spore).
//!
//! ```sh
//! cargo build --release -p spore-host                  # the `spore` binary, run as node B
//! cargo bench --bench workloads                        # full N, 1 warm-up + 5 measured reps
//! cargo bench --bench workloads -- --quick             # small N, 1 warm-up + 2 reps
//! cargo bench --bench workloads -- --only W2,W3        # some workloads (`floor` is one too)
//! cargo bench --bench workloads -- --pin same          # placement: split (default), same, none
//! cargo bench --bench workloads -- --n W2=20000 --reps 3 --no-floor
//! cargo bench --bench workloads -- --compiler winch   # every node compiles with Winch
//! cargo bench --bench workloads -- --copy-on-write     # copy-on-write memory images
//! cargo bench --bench workloads -- --compare           # then Erlang/OTP, and a table of ratios
//! cargo bench --bench workloads -- --quick --compare --only W1,W2
//! ```
//!
//! Topology. Node A is a [`Node`] in this OS process, started fresh for every repetition.
//! Node B (`benchb@localhost`) is a `spore node` OS process (target/release/spore next to this
//! binary's directory, or `$SPORE_BIN`) started once before the first remote workload, with
//! the same cookie and a private port mapper (which B serves); W5b starts a fresh peer per
//! repetition (with an empty disk cache), W6 fresh peers C and X (X with another cookie).
//! Every OS process the bench starts is killed when the bench ends, by a guard.
//!
//! CPU placement (`--pin`): `split` runs this process on CPU 0 (it re-executes itself under
//! `taskset -c 0`) and every other node on CPU 1; `same` everything on CPU 0; `none` no
//! pinning. Spore sizes its process runtime from the CPUs it may use, so `sched=` (this
//! process's CPUs) is the worker count of node A, and of node B under `split` and `same`.
//!
//! Timing. For W1 and W4 the guest drivers (tests/guests/examples/bench.rs) report to a host
//! process and the wall time is measured here, from the host's `"go"` to the report (W4a:
//! until the node's process count is back to its value before the run, polled every 1 ms, as
//! the Erlang harness does). The drivers of W2, W3 and W5 run on node A with the clock granted
//! and time themselves (each round trip or spawn, and the total), as the Erlang driver
//! process does. W5b and W6 are timed around the host-side calls, by a host process of node
//! A in a task on A's runtime (as Erlang's harness times in a process of A: from this
//! binary's own runtime, each call would pay two wake-ups across threads more).
//!
//! Output follows the spec: one line per workload on stdout,
//! `<ID> spore <key>=<median> ... n=<N> reps=<R> pin=<placement> sched=<threads>
//! range:<key>=<min>..<max> ...`, and `FLOOR udp64 ...` / `FLOOR tcp64 ...` / `FLOOR quic64
//! ...` / `FLOOR quic64-spin ...` / `FLOOR wasm-spawn ...` lines; raw per-repetition values
//! and notes go to stderr after `#`.
//!
//! `--compare` then runs the Erlang/OTP harness (tests/benches/erlang/run.sh) over plain TCP
//! and over TLS with the same placement and selection (plus W7b, which only Erlang runs),
//! never at the same time as Spore, and prints a table of ratios: see [`compare`].

mod compare;
mod quic_floor;

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use ciborium::Value;
use spore_host::config::DEFAULT_MAX_PROCESSES;
use spore_host::{
    CacheDir, Compiler, ConnectError, DistConfig, ExitReason, HostProcess, Incoming, ModuleId, Node,
    NodeConfig, Pid, Ref, Selector, SpawnRequest, cbor,
};
use spore_tests::{guests, int, text};

/// Node A runs in this process, with the allocator the `spore` binary has; W4b counts the
/// heap its processes hold through it.
#[global_allocator]
static ALLOCATOR: heap::Counted = heap::Counted;

/// The live-heap counter behind W4b's `heap_bytes_per_proc`. The RSS difference alone hides
/// host-side heap that reuses pages freed earlier in the run, so W4b also counts the bytes
/// allocated minus freed while its processes start. Counting is off outside that window, so
/// other workloads pay one relaxed load of a flag nobody writes per allocation.
mod heap {
    use std::alloc::{GlobalAlloc, Layout};
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

    static COUNTING: AtomicBool = AtomicBool::new(false);
    static LIVE: AtomicI64 = AtomicI64::new(0);

    /// mimalloc, counting live bytes while [`start`] is in effect.
    pub struct Counted;

    // SAFETY: every call is forwarded unchanged to mimalloc; the counter only observes sizes.
    unsafe impl GlobalAlloc for Counted {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            count(layout.size() as i64);
            // SAFETY: the caller upholds `alloc`'s contract, which mimalloc shares.
            unsafe { mimalloc::MiMalloc.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            count(layout.size() as i64);
            // SAFETY: as for `alloc`.
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            count(-(layout.size() as i64));
            // SAFETY: `ptr` came from this allocator, that is from mimalloc, with `layout`.
            unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            count(new_size as i64 - layout.size() as i64);
            // SAFETY: as for `dealloc`, and the caller upholds `realloc`'s contract.
            unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
        }
    }

    #[inline]
    fn count(delta: i64) {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(delta, Ordering::Relaxed);
        }
    }

    /// Starts counting from zero.
    pub fn start() {
        LIVE.store(0, Ordering::SeqCst);
        COUNTING.store(true, Ordering::SeqCst);
    }

    /// Stops counting; the net bytes allocated since [`start`].
    pub fn stop() -> i64 {
        COUNTING.store(false, Ordering::SeqCst);
        LIVE.load(Ordering::SeqCst)
    }
}

/// What `--help` prints.
const USAGE: &str = "\
usage: cargo bench --bench workloads -- [options] [workload ids]
  --quick              small N, 1 warm-up + 2 reps (a few minutes)
  --only W1,W2,...     run only these workloads (`floor` is one too); ids may also be given bare
  --reps R             measured repetitions (default 5)
  --n ID=N             N of one workload
  --pin split|same|none  CPU placement (default split: this process on CPU 0, other nodes on 1)
  --no-floor           skip the floors (loopback and QUIC round trips; W4a's wasmtime spawn)
  --compiler cranelift|winch  the compiler of every node
  --copy-on-write      copy-on-write memory images
  --compare            then run the Erlang/OTP harness (plain TCP and TLS) and print a table
";

/// Measured repetitions of a full run (after one discarded warm-up).
const REPS: usize = 5;
/// Measured repetitions of a `--quick` run.
const QUICK_REPS: usize = 2;
/// The longest the host waits for one report of a driver before giving up.
const PATIENCE: Duration = Duration::from_secs(600);
/// How often W4a polls the node's process count (the Erlang harness: `receive after 1`).
const POLL: Duration = Duration::from_millis(1);
/// How long a repetition waits for the previous node's instance pool to be released.
const NODE_START_PATIENCE: Duration = Duration::from_secs(30);
/// W4b's untimed pause after the spawns, so every process has reached its blocking receive.
const SETTLE: Duration = Duration::from_millis(200);
/// How long a `spore node` process may take to start listening.
const BOOT_PATIENCE: Duration = Duration::from_secs(30);
/// How long one connection attempt (W6) may take.
const CONNECT_PATIENCE: Duration = Duration::from_secs(30);
/// Node B's name.
const B_NAME: &str = "benchb@localhost";
/// Node B's liveness tick, in seconds (`--tick`), the same as node A's default.
const TICK_SECS: &str = "15";
/// Set in the environment of this binary once it runs under `taskset`, so that it does not
/// re-execute itself again.
const PINNED_ENV: &str = "SPORE_BENCH_PINNED";
/// Set with [`PINNED_ENV`]: the CPUs this binary could use before it pinned itself, so that
/// the Erlang harness can run on them (`--compare`).
const CPUS_ENV: &str = "SPORE_BENCH_CPUS";
/// Round trips of the floor measurement (the spec's), and of a `--quick` run.
const FLOOR_N: usize = 100_000;
/// Spawns of the wasmtime spawn floor (W4a's).
const SPAWN_FLOOR_N: usize = 100_000;
/// Spawns of the wasmtime spawn floor in a `--quick` run.
const QUICK_SPAWN_FLOOR_N: usize = 20_000;
/// Round trips of the floor measurement in a `--quick` run.
const QUICK_FLOOR_N: usize = 20_000;
/// Untimed round trips before the floor measurement (as the C floor tool does).
const FLOOR_WARM_UP: usize = 2_000;
/// W6: connection attempts with the wrong cookie after the first one.
const W6_REJECTS: usize = 200;
/// W6: the untimed pause after a refused attempt. `Node::connect` answers as soon as the
/// attempt has failed, but the failed peer is removed a moment later on the node's network
/// thread; an attempt made before that returns the same failure at once, without dialing.
const W6_REJECT_PAUSE: Duration = Duration::from_millis(1);
/// W6: the pause after A has seen the disconnect, before checking it is still down.
const W6_DOWN_PAUSE: Duration = Duration::from_millis(5);
/// W3b's payload size.
const LARGE_PAYLOAD: u64 = 65_536;
/// The payload size of the other workloads.
const SMALL_PAYLOAD: u64 = 64;

/// One workload: its id, what it reports, its N, and how to run one repetition.
struct Workload {
    /// The spec's id, e.g. `W1`.
    id: &'static str,
    /// The keys of the values a repetition returns, in order.
    keys: &'static [&'static str],
    /// N of a full run.
    n: u64,
    /// N of a `--quick` run.
    quick_n: u64,
    /// Why N differs from the spec's, printed on stderr.
    n_note: &'static str,
    /// Whether it needs node B (and so the `spore` binary).
    remote: bool,
    /// Runs one repetition on a fresh node A and returns one value per key.
    run: fn(&Bench, u64) -> anyhow::Result<Vec<f64>>,
}

/// W4b's values (see [`w4b`]).
const W4B_KEYS: &[&str] =
    &["spawns_per_s", "bytes_per_proc", "rss_bytes_per_proc", "spawn_calls_per_s", "heap_bytes_per_proc"];

/// The workloads, in the order they run.
const WORKLOADS: &[Workload] = &[
    Workload {
        id: "W1",
        keys: &["rtt_per_s", "mean_rtt_us"],
        n: 500_000,
        quick_n: 100_000,
        n_note: "spec N is 5000000; lowered so that one repetition lasts 1-10 s here. Ping and pong \
                 send each message and wait for the next in one host call (send_receive)",
        remote: false,
        run: |b, n| b.rt.block_on(w1(n)),
    },
    Workload {
        id: "W2",
        keys: &["p50_us", "p99_us", "rtt_per_s", "mean_rtt_us"],
        n: 50_000,
        quick_n: 5_000,
        n_note: "spec N is 100000; lowered so that one repetition lasts 1-10 s here",
        remote: true,
        run: |b, n| b.rt.block_on(w2(b.cluster()?, n)),
    },
    Workload {
        id: "W3",
        keys: &["msgs_per_s", "mb_per_s"],
        n: 1_000_000,
        quick_n: 100_000,
        n_note: "spec N",
        remote: true,
        run: |b, n| b.rt.block_on(w3(b.cluster()?, n, SMALL_PAYLOAD)),
    },
    Workload {
        id: "W3b",
        keys: &["mb_per_s", "msgs_per_s"],
        n: 60_000,
        quick_n: 4_000,
        n_note: "spec N is 80000; lowered so that one repetition lasts 1-10 s here",
        remote: true,
        run: |b, n| b.rt.block_on(w3(b.cluster()?, n, LARGE_PAYLOAD)),
    },
    Workload {
        id: "W4a",
        keys: &["spawns_per_s", "mean_us"],
        n: 100_000,
        quick_n: 20_000,
        n_note: "spec N is 2000000; lowered so that one repetition lasts 1-10 s here. The \
                 processes are the lean bench guest's (SDK without std)",
        remote: false,
        run: |b, n| b.rt.block_on(w4a(n, Guest::Lean)),
    },
    Workload {
        id: "W4a-std",
        keys: &["spawns_per_s", "mean_us"],
        n: 100_000,
        quick_n: 20_000,
        n_note: "Spore only: W4a with the bench guest on the SDK with std",
        remote: false,
        run: |b, n| b.rt.block_on(w4a(n, Guest::Std)),
    },
    Workload {
        id: "W4b",
        keys: W4B_KEYS,
        n: 10_000,
        quick_n: 2_000,
        n_note: "spec N is 100000; each live instance costs about four kernel memory mappings, so \
                 vm.max_map_count caps live processes near max_map_count / 4. The processes are \
                 the lean bench guest's (SDK without std)",
        remote: false,
        run: |b, n| b.rt.block_on(w4b(n, Guest::Lean)),
    },
    Workload {
        id: "W4b-std",
        keys: W4B_KEYS,
        n: 10_000,
        quick_n: 2_000,
        n_note: "Spore only: W4b with the bench guest on the SDK with std",
        remote: false,
        run: |b, n| b.rt.block_on(w4b(n, Guest::Std)),
    },
    Workload {
        id: "W5",
        keys: &["spawns_per_s", "mean_us", "p50_us", "p99_us"],
        n: 30_000,
        quick_n: 4_000,
        n_note: "spec N is 80000; lowered so that one repetition lasts 1-10 s here",
        remote: true,
        run: |b, n| b.rt.block_on(w5(b.cluster()?, n)),
    },
    Workload {
        id: "W5b",
        keys: &["p50_us", "mean_us", "p99_us", "module_bytes"],
        n: 200,
        quick_n: 5,
        n_note: "n is K, the modules per repetition (spec K); each module is the lean hello \
                 guest (SDK without std, ~37 KB)",
        remote: true,
        run: |b, n| b.rt.block_on(w5b(b.cluster()?, n, Guest::Lean)),
    },
    Workload {
        id: "W5b-std",
        keys: &["p50_us", "mean_us", "p99_us", "module_bytes"],
        n: 25,
        quick_n: 5,
        n_note: "Spore only: W5b with the hello guest on the SDK with std (~81 KB); K lowered from \
                 200 to 25 so that a repetition lasts about half a second",
        remote: true,
        run: |b, n| b.rt.block_on(w5b(b.cluster()?, n, Guest::Std)),
    },
    Workload {
        id: "W7",
        keys: &["calls_per_s", "mean_us"],
        n: 30_000,
        quick_n: 4_000,
        n_note: "spec N is 80000; lowered so that one repetition lasts 1-10 s here",
        remote: true,
        run: |b, n| b.rt.block_on(w7(b.cluster()?, n)),
    },
    Workload {
        id: "W6",
        keys: &[
            "connect_us",
            "reconnect_p50_us",
            "reconnect_p99_us",
            "reject_first_us",
            "reject_p50_us",
            "rejected",
        ],
        n: 20,
        quick_n: 5,
        n_note: "spec M; n is M, the reconnect cycles per repetition",
        remote: true,
        run: |b, n| b.rt.block_on(w6(b.cluster()?, n)),
    },
];

/// Set by `--compiler winch`: every node of the run compiles with Winch.
static COMPILER: AtomicBool = AtomicBool::new(false);

/// Whether this run's nodes compile with Winch.
fn winch() -> bool {
    COMPILER.load(Ordering::Relaxed)
}

/// Set by `--copy-on-write`: every node of the run uses copy-on-write memory images.
static COPY_ON_WRITE: AtomicBool = AtomicBool::new(false);

/// Whether this run's nodes use copy-on-write memory images.
fn copy_on_write() -> bool {
    COPY_ON_WRITE.load(Ordering::Relaxed)
}

/// This run's settings that differ from the nodes' defaults, as ` key=value` pairs after a
/// comma (empty when none), for the result lines and the run's header.
fn non_defaults() -> String {
    let mut out = String::new();
    if winch() {
        out.push_str(", compiler=winch");
    }
    if copy_on_write() {
        out.push_str(", copy_on_write=true");
    }
    out
}

/// The compiler of this run's nodes.
fn compiler() -> Compiler {
    if winch() { Compiler::Winch } else { Compiler::Cranelift }
}

/// Where the nodes run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pin {
    /// Node A (this process) on CPU 0, every other node on CPU 1: the spec's canonical one.
    Split,
    /// Every node on CPU 0.
    Same,
    /// No pinning.
    None,
}

impl Pin {
    /// The spec's name of the placement.
    fn name(self) -> &'static str {
        match self {
            Pin::Split => "split",
            Pin::Same => "same",
            Pin::None => "none",
        }
    }

    /// The CPU of this process (node A), for `taskset -c`.
    fn a_cpu(self) -> Option<&'static str> {
        match self {
            Pin::Split | Pin::Same => Some("0"),
            Pin::None => None,
        }
    }

    /// The CPU of every other node and of the floor's echo process.
    fn other_cpu(self) -> Option<&'static str> {
        match self {
            Pin::Split => Some("1"),
            Pin::Same => Some("0"),
            Pin::None => None,
        }
    }

    /// A command that runs `program` on [`Pin::other_cpu`].
    fn command_for_other(self, program: &Path) -> Command {
        match self.other_cpu() {
            Some(cpu) => {
                let mut cmd = Command::new("taskset");
                cmd.args(["-c", cpu]).arg(program);
                cmd
            }
            None => Command::new(program),
        }
    }
}

/// Command-line options. Unknown arguments (such as the `--bench` cargo passes) are ignored.
struct Options {
    /// Small N and fewer repetitions.
    quick: bool,
    /// Run only these workloads (all when empty); `floor` names the floor measurement.
    only: Vec<String>,
    /// Measured repetitions.
    reps: usize,
    /// N overrides, by workload id.
    n: Vec<(String, u64)>,
    /// The CPU placement.
    pin: Pin,
    /// Skip the floor measurement.
    no_floor: bool,
    /// `--compiler winch`: every node compiles with Winch instead of Cranelift.
    winch: bool,
    /// `--copy-on-write`: every node maps linear memories from copy-on-write images.
    copy_on_write: bool,
    /// Run the Erlang harness after the Spore workloads and print a comparison table.
    compare: bool,
}

impl Options {
    /// Parses the process's arguments.
    fn parse() -> anyhow::Result<Self> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = args.iter().any(|a| a == "--quick");
        let mut options = Options {
            quick,
            only: Vec::new(),
            reps: if quick { QUICK_REPS } else { REPS },
            n: Vec::new(),
            pin: Pin::Split,
            no_floor: false,
            winch: false,
            copy_on_write: false,
            compare: false,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--only" => {
                    let ids = args.next().context("--only needs workload ids, e.g. --only W1,W4a")?;
                    options.only.extend(ids.split(',').map(str::to_owned));
                }
                "--reps" => {
                    let reps = args.next().context("--reps needs a number")?;
                    options.reps = reps.parse().with_context(|| format!("bad --reps {reps}"))?;
                    ensure!(options.reps > 0, "--reps must be at least 1");
                }
                "--n" => {
                    let spec = args.next().context("--n needs ID=N, e.g. --n W1=100000")?;
                    let (id, n) = spec.split_once('=').with_context(|| format!("bad --n {spec}"))?;
                    let n = n.parse().with_context(|| format!("bad --n {spec}"))?;
                    ensure!(n > 0, "--n {spec}: N must be at least 1");
                    options.n.push((id.to_owned(), n));
                }
                "--pin" => {
                    let pin = args.next().context("--pin needs split, same or none")?;
                    options.pin = match pin.as_str() {
                        "split" => Pin::Split,
                        "same" => Pin::Same,
                        "none" => Pin::None,
                        _ => bail!("bad --pin {pin} (split, same or none)"),
                    };
                }
                "--no-floor" => options.no_floor = true,
                "--copy-on-write" => options.copy_on_write = true,
                "--compiler" => {
                    let compiler = args.next().context("--compiler needs cranelift or winch")?;
                    options.winch = match compiler.as_str() {
                        "cranelift" => false,
                        "winch" => true,
                        _ => bail!("bad --compiler {compiler} (cranelift or winch)"),
                    };
                }
                "--compare" => options.compare = true,
                "--help" | "-h" => {
                    print!("{USAGE}");
                    std::process::exit(0);
                }
                // `--quick` is read above; cargo passes `--bench` to every bench target.
                "--quick" | "--bench" => {}
                id if all_ids().any(|known| known == id) => options.only.push(id.to_owned()),
                other => bail!("unknown argument {other}\n{USAGE}"),
            }
        }
        let known = |id: &str| id == "floor" || all_ids().any(|known| known == id);
        if let Some(unknown) = options.only.iter().find(|id| !known(id)) {
            let ids: Vec<&str> = all_ids().collect();
            bail!("unknown workload {unknown} (known: {}, floor)", ids.join(", "));
        }
        Ok(options)
    }

    /// Whether workload (or `floor`) `id` runs.
    fn selected(&self, id: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == id)
    }
}

/// The ids of every workload, Spore's and then the one only Erlang runs (W7b): the spec's
/// order.
fn all_ids() -> impl Iterator<Item = &'static str> {
    WORKLOADS.iter().map(|w| w.id).chain(compare::ERLANG_ONLY.iter().copied())
}

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--floor-echo") {
        return floor_echo();
    }
    let options = Options::parse()?;
    if options.winch {
        COMPILER.store(true, Ordering::Relaxed);
    }
    if options.copy_on_write {
        COPY_ON_WRITE.store(true, Ordering::Relaxed);
    }
    pin_self(options.pin)?;
    let mut lines = run_spore(&options)?;
    if options.compare {
        let ids: Vec<&str> = all_ids().filter(|id| options.selected(id)).collect();
        let run =
            compare::ErlangRun { ids: &ids, pin: options.pin, reps: options.reps, quick: options.quick };
        let erlang = compare::run_erlang(&run)?;
        lines.extend(erlang.lines);
        println!();
        print!("{}", compare::table(&lines, &erlang.failures, &ids, options.pin.name(), options.quick));
    }
    Ok(())
}

/// Runs the floor and the selected Spore workloads, printing their result lines, and returns
/// those lines. Every node it started is stopped when it returns.
fn run_spore(options: &Options) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    let sched = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pin = options.pin.name();
    eprintln!(
        "# pin={pin} (this process on CPUs {}); each repetition runs on a fresh Node A in this one OS \
         process (the spec asks for a new process per repetition); nodes use NodeConfig defaults{}{}",
        allowed_cpus().unwrap_or_else(|| "?".into()),
        if non_defaults().is_empty() { "" } else { ", except" },
        non_defaults().trim_start_matches(',')
    );
    let selected: Vec<&Workload> = WORKLOADS.iter().filter(|w| options.selected(w.id)).collect();
    let remote = selected.iter().any(|w| w.remote);
    // W7b is remote too: with --compare, Erlang runs it.
    let erlang_remote = options.compare && compare::ERLANG_ONLY.iter().any(|id| options.selected(id));
    if !options.no_floor && (remote || erlang_remote || options.only.iter().any(|o| o == "floor")) {
        let n = if options.quick { QUICK_FLOOR_N } else { FLOOR_N };
        for line in floor(options.pin, n).context("floor")? {
            println!("{line}");
            lines.push(line);
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    if !options.no_floor && (options.selected("W4a") || options.only.iter().any(|o| o == "floor")) {
        let n = if options.quick { QUICK_SPAWN_FLOOR_N } else { SPAWN_FLOOR_N };
        let line = runtime.block_on(spawn_floor(options.pin, n)).context("spawn floor")?;
        println!("{line}");
        lines.push(line);
    }
    let cluster = if remote { Some(Cluster::start(spore_binary()?, options.pin)?) } else { None };
    let bench = Bench { rt: runtime, cluster };
    for workload in selected {
        let given = options.n.iter().find(|(id, _)| id == workload.id).map(|(_, n)| *n);
        let (n, why) = match given {
            Some(n) => (n, "set with --n"),
            None if options.quick => (workload.quick_n, "--quick"),
            None => (workload.n, workload.n_note),
        };
        eprintln!("# {}: n={n} ({why}{})", workload.id, map_count_note(workload.id));
        let warm_up = Instant::now();
        (workload.run)(&bench, n).with_context(|| format!("{} warm-up", workload.id))?;
        eprintln!("# {} warm-up took {:.2} s", workload.id, warm_up.elapsed().as_secs_f64());
        let mut samples = Vec::with_capacity(options.reps);
        for rep in 1..=options.reps {
            let started = Instant::now();
            let values = (workload.run)(&bench, n).with_context(|| format!("{} rep {rep}", workload.id))?;
            let took = started.elapsed().as_secs_f64();
            eprintln!(
                "# {} spore rep={rep} {} rep_s={took:.2}",
                workload.id,
                key_values(workload.keys, &values)
            );
            samples.push(values);
        }
        let mut line = result_line(workload, n, options.reps, pin, sched, &samples);
        line.push_str(&non_defaults().replace(',', ""));
        // Only W4b keeps more than a few processes alive at once.
        if workload.id.starts_with("W4b") && max_processes(n + 1) != DEFAULT_MAX_PROCESSES {
            line.push_str(&format!(" max_processes={}", max_processes(n + 1)));
        }
        println!("{line}");
        lines.push(line);
        if let Some(cluster) = &bench.cluster {
            cluster.b.check_alive()?;
        }
    }
    Ok(lines)
}

/// What a repetition runs with: the runtime that drives the host side, and the cluster
/// when a remote workload runs.
struct Bench {
    /// Drives the host processes (nodes have runtimes of their own).
    rt: tokio::runtime::Runtime,
    /// Node B and how to start more nodes.
    cluster: Option<Cluster>,
}

impl Bench {
    /// The cluster (started in `main` when a remote workload is selected).
    fn cluster(&self) -> anyhow::Result<&Cluster> {
        self.cluster.as_ref().context("no cluster started")
    }
}

/// A smoke run of every workload, for tests/it/bench_smoke.rs: node B from `spore`,
/// unpinned, the nodes here with small instance pools (they share the test process with other
/// nodes), tiny N, one repetition each, no loopback floor, and W4a's wasmtime floor last. The
/// workloads check their counts; nothing about time is checked. Returns the result lines.
#[allow(dead_code, reason = "used by tests/it/bench_smoke.rs, which includes this file")]
pub fn smoke(spore: PathBuf) -> anyhow::Result<Vec<String>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut cluster = Cluster::start(spore, Pin::None)?;
    cluster.a_max_processes = 64;
    cluster.rejects = 3;
    let bench = Bench { rt, cluster: Some(cluster) };
    let sched = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut lines = Vec::new();
    POOL_FLOOR.store(64, Ordering::Relaxed);
    let runs = [
        ("W1", 100),
        ("W4a", 100),
        ("W4a-std", 100),
        ("W4b", 20),
        ("W4b-std", 20),
        ("W2", 10),
        ("W3", 1_000),
        ("W3b", 10),
        ("W5", 10),
        ("W5b", 2),
        ("W5b-std", 2),
        ("W7", 10),
        ("W6", 2),
    ];
    for (id, n) in runs {
        let workload = WORKLOADS.iter().find(|w| w.id == id).context(id)?;
        let values = (workload.run)(&bench, n).with_context(|| format!("{id} smoke run"))?;
        lines.push(result_line(workload, n, 1, Pin::None.name(), sched, &[values]));
    }
    lines.extend(quic_floor_in_process(10).context("QUIC floor smoke run")?);
    lines.push(bench.rt.block_on(spawn_floor(Pin::None, 10)).context("spawn floor smoke run")?);
    Ok(lines)
}

/// The QUIC floor's lines with its echo side on a thread of this process, for the smoke run
/// (whose binary is not the bench's, so it cannot start itself as the echo process).
fn quic_floor_in_process(n: usize) -> anyhow::Result<Vec<String>> {
    let echo_runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let echo = quic_floor::Echo::bind(&echo_runtime)?;
    let port = echo.port();
    let echo = std::thread::spawn(move || echo_runtime.block_on(echo.serve()));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // A dialer that failed leaves the echo side waiting for its connection: not joined then.
    let timed = runtime.block_on(quic_floor::round_trips(port, n, 0))?;
    echo.join().map_err(|_| anyhow::anyhow!("the echo thread panicked"))??;
    Ok(timed
        .into_iter()
        .map(|mut t| floor_result(t.what, "rtt_per_s", &mut t.samples, t.total, Pin::None))
        .collect())
}

/// The spec's result line for `samples` (one row of values per repetition).
fn result_line(
    workload: &Workload,
    n: u64,
    reps: usize,
    pin: &str,
    sched: usize,
    samples: &[Vec<f64>],
) -> String {
    let columns: Vec<Vec<f64>> = (0..workload.keys.len())
        .map(|k| {
            let mut column: Vec<f64> = samples.iter().map(|s| s[k]).collect();
            column.sort_by(f64::total_cmp);
            column
        })
        .collect();
    // A flag is true only if it was in every repetition.
    let medians: Vec<f64> = workload
        .keys
        .iter()
        .zip(&columns)
        .map(|(key, c)| if is_flag(key) { c[0] } else { median(c) })
        .collect();
    let ranges: Vec<String> = workload
        .keys
        .iter()
        .zip(&columns)
        .map(|(key, c)| format!("range:{key}={}..{}", fmt_value(key, c[0]), fmt_value(key, c[c.len() - 1])))
        .collect();
    format!(
        "{} spore {} n={n} reps={reps} pin={pin} sched={sched} {}",
        workload.id,
        key_values(workload.keys, &medians),
        ranges.join(" ")
    )
}

/// `key=value` pairs, space-separated.
fn key_values(keys: &[&str], values: &[f64]) -> String {
    keys.iter().zip(values).map(|(k, v)| format!("{k}={}", fmt_value(k, *v))).collect::<Vec<_>>().join(" ")
}

/// Whether `key` is a true/false result (carried as 1.0/0.0).
fn is_flag(key: &str) -> bool {
    key == "rejected"
}

/// A value of `key`: true/false for flags, else as [`fmt`].
fn fmt_value(key: &str, v: f64) -> String {
    if is_flag(key) { (v >= 0.5).to_string() } else { fmt(v) }
}

/// The median of sorted, non-empty `values` (the mean of the middle two for an even count,
/// as the Erlang harness does).
fn median(values: &[f64]) -> f64 {
    let l = values.len();
    if l % 2 == 1 { values[l / 2] } else { (values[l / 2 - 1] + values[l / 2]) / 2.0 }
}

/// The nearest-rank percentile `p` (0..=1) of sorted, non-empty `sorted`.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Sorts `samples` (microseconds) and returns their p50, p99 and mean.
fn latency_stats(samples: &mut [f64]) -> (f64, f64, f64) {
    samples.sort_by(f64::total_cmp);
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    (percentile(samples, 0.50), percentile(samples, 0.99), mean)
}

/// Formats a value as the Erlang harness does: integral from 1000 up, one decimal from 10,
/// three below.
fn fmt(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{}", v.round())
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// The CPUs this process may run on (`Cpus_allowed_list`).
fn allowed_cpus() -> Option<String> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:").map(|v| v.trim().to_owned()))
}

/// Puts this process where `pin` wants node A: re-executes it under `taskset -c 0` unless it
/// already runs there (marked by [`PINNED_ENV`]). Returns only when no re-execution is
/// needed.
fn pin_self(pin: Pin) -> anyhow::Result<()> {
    let Some(cpu) = pin.a_cpu() else { return Ok(()) };
    if std::env::var_os(PINNED_ENV).is_some() {
        let allowed = allowed_cpus().unwrap_or_default();
        ensure!(allowed == cpu, "expected to run on CPU {cpu} under taskset, but may run on {allowed}");
        return Ok(());
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    ensure!(
        pin != Pin::Split || cpus >= 2,
        "--pin split needs CPUs 0 and 1, but this process may use {cpus} CPU(s): use --pin same or none"
    );
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().context("locating this binary")?;
    let err = Command::new("taskset")
        .args(["-c", cpu])
        .arg(&exe)
        .args(std::env::args_os().skip(1))
        .env(PINNED_ENV, "1")
        .env(CPUS_ENV, allowed_cpus().unwrap_or_default())
        .exec();
    Err(err).context("re-executing under `taskset -c 0` (is util-linux's taskset installed?)")
}

/// For W4b: the kernel's `vm.max_map_count` and the cap on live processes it implies.
fn map_count_note(id: &str) -> String {
    if id != "W4b" {
        return String::new();
    }
    match std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
    {
        Some(max) => format!("; here vm.max_map_count={max}, so about {} live processes", max / 4),
        None => String::new(),
    }
}

/// The node's pool size for `processes` live guests: the default unless more are needed
/// (W4b with a large `--n`), which is then a non-default setting printed with the results.
fn max_processes(processes: u64) -> u32 {
    let needed = u32::try_from(processes.saturating_add(16)).unwrap_or(u32::MAX);
    needed.max(POOL_FLOOR.load(Ordering::Relaxed))
}

/// The smallest instance pool of a local workload's node: the node default, but 64 in the
/// smoke run, whose nodes share the test process's address space.
static POOL_FLOOR: AtomicU32 = AtomicU32::new(DEFAULT_MAX_PROCESSES);

/// Starts a node, retrying for a while when its instance pool cannot be reserved: the pool of
/// the previous repetition's node (tens of TiB of address space with the default 4 GiB
/// reservation per memory) is released in the background after that node is dropped.
fn start_node(config: NodeConfig) -> anyhow::Result<Node> {
    let started = Instant::now();
    let mut failures = 0;
    loop {
        match Node::start(config.clone()) {
            Ok(node) => {
                if failures > 0 {
                    let waited = started.elapsed();
                    eprintln!("#   waited {waited:.1?} for the previous node's pool to be released");
                }
                return Ok(node);
            }
            Err(_) if started.elapsed() < NODE_START_PATIENCE => {
                failures += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e).context("starting a node"),
        }
    }
}

/// A number unique in this run, for node names and scratch directories.
fn next_seq() -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(1);
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// A child OS process, killed (SIGKILL) and reaped when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `spore node` OS process whose output lines can be awaited.
struct NodeProcess {
    /// Its name.
    name: String,
    /// Its output, stdout and stderr, a line at a time.
    lines: mpsc::Receiver<String>,
    /// The process (killed when dropped).
    child: ChildGuard,
}

impl NodeProcess {
    /// Starts `spore node` as `name` with `cookie` and the port mapper on `mapper`, on
    /// `pin`'s CPU for nodes other than A, with its disk cache in `cache` (through
    /// `XDG_CACHE_HOME`), and waits until it listens. With `echo`, its output is copied to
    /// stderr after `#`.
    fn start(
        spore: &Path,
        pin: Pin,
        name: &str,
        cookie: &str,
        mapper: u16,
        cache: &Path,
        echo: bool,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
        let mut cmd = pin.command_for_other(spore);
        cmd.args(["node", "--name", name, "--cookie", cookie, "--mapper-port", &mapper.to_string()])
            .args(["--tick", TICK_SECS])
            .args(["--compiler", if winch() { "winch" } else { "cranelift" }])
            .args(if copy_on_write() { &["--copy-on-write"][..] } else { &[] })
            .env("XDG_CACHE_HOME", cache)
            .env_remove(PINNED_ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().with_context(|| format!("starting {}", spore.display()))?;
        let (tx, lines) = mpsc::channel();
        let streams: [Option<Box<dyn Read + Send>>; 2] = [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        ];
        for stream in streams.into_iter().flatten() {
            let tx = tx.clone();
            let label = name.split_once('@').map_or(name, |(s, _)| s).to_owned();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if echo {
                        eprintln!("#   [{label}] {line}");
                    }
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        let mut node = Self { name: name.to_owned(), lines, child: ChildGuard(child) };
        node.wait_for("listening on")?;
        Ok(node)
    }

    /// Waits for an output line containing `needle`.
    fn wait_for(&mut self, needle: &str) -> anyhow::Result<()> {
        let until = Instant::now() + BOOT_PATIENCE;
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(Duration::from_millis(50)) {
                Ok(line) if line.contains(needle) => return Ok(()),
                Ok(line) => seen.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(status) = self.child.0.try_wait()? {
                        bail!("node {} exited ({status}) before {needle:?}; it said {seen:#?}", self.name);
                    }
                    ensure!(
                        Instant::now() < until,
                        "node {} printed no {needle:?} within {BOOT_PATIENCE:?}; it said {seen:#?}",
                        self.name
                    );
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.0.wait()?;
                    bail!("node {} exited ({status}) before {needle:?}; it said {seen:#?}", self.name);
                }
            }
        }
    }

    /// Fails if the node has exited.
    fn check_alive(&self) -> anyhow::Result<()> {
        // `try_wait` needs `&mut`; a zero-signal kill would need libc: ask /proc instead.
        let pid = self.child.0.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
        ensure!(
            matches!(state, Some(s) if s != 'Z' && s != 'X'),
            "node {} (pid {pid}) has exited",
            self.name
        );
        Ok(())
    }
}

/// Node B, the scratch space of the other nodes, and what a fresh node A needs.
struct Cluster {
    /// The `spore` binary.
    spore: PathBuf,
    /// The placement.
    pin: Pin,
    /// The cluster's cookie, fresh for each run.
    cookie: String,
    /// The port mapper's port, private to this run (node B serves it).
    mapper: u16,
    /// The bench guest's bytes (shipped to the nodes that lack it).
    bench_bytes: Bytes,
    /// The hello guest's bytes on the SDK without std (W5b).
    lean_hello_bytes: Bytes,
    /// The hello guest's bytes on the SDK with std (W5b-std).
    hello_bytes: Bytes,
    /// The instance pool of each node A.
    a_max_processes: u32,
    /// W6's wrong-cookie attempts after the first.
    rejects: usize,
    /// Node B, started before the first remote workload and kept to the end.
    b: NodeProcess,
    /// Disk caches of the nodes started here (dropped after `b`, which uses it).
    scratch: Scratch,
}

impl Cluster {
    /// Starts node B with the `spore` binary, placed by `pin`.
    fn start(spore: PathBuf, pin: Pin) -> anyhow::Result<Self> {
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let cookie = format!("spore-bench-{}-{nanos}", std::process::id());
        let mapper = spore_tests::free_port();
        let scratch = Scratch(std::env::temp_dir().join(format!("spore-bench-{}", std::process::id())));
        let bench_bytes =
            Bytes::from(std::fs::read(guests::BENCH).with_context(|| guests::BENCH.to_owned())?);
        let read = |path: &str| std::fs::read(path).map(Bytes::from).with_context(|| path.to_owned());
        let (lean_hello_bytes, hello_bytes) = (read(guests::LEAN_HELLO)?, read(guests::HELLO)?);
        let b = NodeProcess::start(&spore, pin, B_NAME, &cookie, mapper, &scratch.0.join("benchb"), true)?;
        eprintln!(
            "# node B: {B_NAME}, `{} node` (pid {}) on CPUs {}, --tick {TICK_SECS}, port mapper on {mapper}",
            spore.display(),
            b.child.0.id(),
            pin.other_cpu().unwrap_or("any")
        );
        Ok(Self {
            spore,
            pin,
            cookie,
            mapper,
            bench_bytes,
            lean_hello_bytes,
            hello_bytes,
            a_max_processes: DEFAULT_MAX_PROCESSES,
            rejects: W6_REJECTS,
            b,
            scratch,
        })
    }

    /// Starts a fresh `spore node` peer (placed as B) with an empty disk cache of its own.
    fn start_peer(&self, name: &str, cookie: &str) -> anyhow::Result<NodeProcess> {
        let short = name.split_once('@').map_or(name, |(s, _)| s);
        NodeProcess::start(
            &self.spore,
            self.pin,
            name,
            cookie,
            self.mapper,
            &self.scratch.0.join(short),
            false,
        )
    }

    /// A fresh node A in this process, named uniquely, in B's cluster.
    fn node_a(&self) -> anyhow::Result<Node> {
        let mut dist = DistConfig::new(self.cookie.clone());
        dist.mapper_port = Some(self.mapper);
        let config = NodeConfig {
            name: format!("bencha{}@localhost", next_seq()),
            cache_dir: CacheDir::Path(spore_tests::cache_dir()),
            max_processes: self.a_max_processes,
            dist: Some(dist),
            compiler: compiler(),
            copy_on_write: copy_on_write(),
            ..NodeConfig::default()
        };
        start_node(config)
    }
}

/// The `spore` binary: `$SPORE_BIN`, or `spore` in the directory above this binary's
/// (`target/release/deps/workloads-*` → `target/release/spore`). Warns when it is older than
/// the host's sources.
pub fn spore_binary() -> anyhow::Result<PathBuf> {
    let path = match std::env::var_os("SPORE_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let exe = std::env::current_exe().context("locating this binary")?;
            let profile_dir = exe.parent().and_then(Path::parent).context("this binary has no parent dir")?;
            profile_dir.join("spore")
        }
    };
    let release = path.parent().is_some_and(|dir| dir.ends_with("release"));
    let build = if release { "cargo build --release -p spore-host" } else { "cargo build -p spore-host" };
    ensure!(
        path.is_file(),
        "the spore binary is not at {}: build it first with `{build}` (or point SPORE_BIN at it)",
        path.display()
    );
    let built = std::fs::metadata(&path)?.modified()?;
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/src");
    if let Some(newest) = newest_file(&sources)
        && newest > built
    {
        eprintln!(
            "# WARNING: {} is older than the sources in host/src: rebuild it with `{build}`, or \
             node B may speak another protocol",
            path.display()
        );
    }
    Ok(path)
}

/// The latest modification time of the files under `dir`.
fn newest_file(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let time = if path.is_dir() { newest_file(&path) } else { entry.metadata().ok()?.modified().ok() };
        newest = newest.max(time);
    }
    newest
}

/// One repetition's node A, the bench guest loaded on it, and the host process drivers report
/// to.
struct Rep {
    /// Where the drivers report.
    me: HostProcess,
    /// The bench guest.
    module: ModuleId,
    /// A fresh node with default settings (and the tests' compiled-module cache), but see
    /// [`max_processes`].
    node: Node,
    /// Monitors whose normal down notice arrived while waiting for something else.
    ended: RefCell<Vec<Ref>>,
}

impl Rep {
    /// Starts a node with room for at least `processes` guests and loads the bench guest
    /// (untimed).
    async fn start(processes: u64) -> anyhow::Result<Self> {
        Self::start_with(processes, Guest::Std).await
    }

    /// [`Rep::start`] with the bench guest built on `guest`'s SDK (W4a and W4b only: the
    /// lean bench guest has no other drivers).
    async fn start_with(processes: u64, guest: Guest) -> anyhow::Result<Self> {
        let config = NodeConfig {
            name: "bench@localhost".to_owned(),
            max_processes: max_processes(processes),
            cache_dir: CacheDir::Path(spore_tests::cache_dir()),
            compiler: compiler(),
            copy_on_write: copy_on_write(),
            ..NodeConfig::default()
        };
        Self::with_node_and(start_node(config)?, guest.bench()).await
    }

    /// A fresh node A of `cluster`, with the bench guest loaded (untimed).
    async fn start_in(cluster: &Cluster) -> anyhow::Result<Self> {
        Self::with_node(cluster.node_a()?).await
    }

    /// Loads the bench guest on `node` and makes the host process.
    async fn with_node(node: Node) -> anyhow::Result<Self> {
        Self::with_node_and(node, guests::BENCH).await
    }

    /// Loads the bench guest at `path` on `node` and makes the host process.
    async fn with_node_and(node: Node, path: &str) -> anyhow::Result<Self> {
        let module = node.load_file(path).await.with_context(|| format!("loading {path}"))?;
        let me = node.host_process();
        Ok(Rep { me, module, node, ended: RefCell::new(Vec::new()) })
    }

    /// Waits (untimed) until only the host process is left, so that the node is idle when it
    /// is dropped and its instance pool is released soon after.
    fn finish(self) -> anyhow::Result<()> {
        ensure!(self.wait_count(1), "processes still alive after {PATIENCE:?}");
        Ok(())
    }

    /// Spawns the driver `entry` here with `args` followed by the host process's pid,
    /// monitored so that its crash ends the repetition instead of a wait, with the clock if
    /// `clock`, and waits until it is ready.
    async fn driver(&mut self, entry: &str, mut args: Vec<Value>, clock: bool) -> anyhow::Result<Pid> {
        args.push(self.node.pid_value(self.me.pid()));
        let mut request = SpawnRequest::new(self.module, entry).args(cbor::to_bytes(&Value::Array(args)));
        request.grants.clock = clock;
        let (pid, _monitor) = self.me.spawn_monitor(request)?;
        self.expect(&text("ready")).await?;
        Ok(pid)
    }

    /// Spawns `entry` of the bench guest on `node` (shipping it if that node lacks it) with
    /// `args` followed by the host process's pid, monitored.
    async fn spawn_on(
        &self,
        node: &str,
        entry: &str,
        bytes: &Bytes,
        mut args: Vec<Value>,
    ) -> anyhow::Result<(Pid, Ref)> {
        args.push(self.node.pid_value(self.me.pid()));
        let mut request = SpawnRequest::new(self.module, entry).args(cbor::to_bytes(&Value::Array(args)));
        request.code = Some(bytes.clone());
        self.me.spawn_monitor_on(node, request).await.with_context(|| format!("spawning {entry} on {node}"))
    }

    /// Sends `"go"` to `driver`.
    async fn go(&self, driver: Pid) -> anyhow::Result<()> {
        Ok(self.me.send(driver, 0, cbor::to_bytes(&text("go"))).await?)
    }

    /// Sends `"stop"` to `driver`.
    async fn stop(&self, driver: Pid) -> anyhow::Result<()> {
        Ok(self.me.send(driver, 0, cbor::to_bytes(&text("stop"))).await?)
    }

    /// Waits for the next message, which must be CBOR; a monitored process's abnormal end
    /// before it is an error (a normal end is remembered for [`Rep::wait_down`]).
    async fn next(&mut self) -> anyhow::Result<Value> {
        loop {
            match self.me.receive(&[], Some(PATIENCE)).await {
                Some(Incoming::Message(m)) => {
                    return cbor::from_bytes(&m.payload).context("a report that is not CBOR");
                }
                Some(Incoming::Down { monitor, reason: ExitReason::Normal, .. }) => {
                    self.ended.borrow_mut().push(monitor);
                }
                Some(Incoming::Down { pid, reason, .. }) => bail!("process {pid} ended early: {reason}"),
                Some(other) => bail!("unexpected {other:?}"),
                None => bail!("no report within {PATIENCE:?}"),
            }
        }
    }

    /// Waits until the process monitored by `monitor` has ended normally.
    async fn wait_down(&mut self, monitor: Ref) -> anyhow::Result<()> {
        let seen = {
            let mut ended = self.ended.borrow_mut();
            ended.iter().position(|m| *m == monitor).map(|i| ended.remove(i))
        };
        if seen.is_some() {
            return Ok(());
        }
        match self.me.receive(&[Selector::Tag(monitor)], Some(PATIENCE)).await {
            Some(Incoming::Down { reason: ExitReason::Normal, .. }) => Ok(()),
            Some(Incoming::Down { pid, reason, .. }) => bail!("process {pid} ended: {reason}"),
            other => bail!("expected a down notice, got {other:?}"),
        }
    }

    /// Waits for the message `expected`.
    async fn expect(&mut self, expected: &Value) -> anyhow::Result<()> {
        let got = self.next().await?;
        ensure!(got == *expected, "expected {expected:?}, got {got:?}");
        Ok(())
    }

    /// Waits for `(tag, count)` and returns the count.
    async fn expect_count(&mut self, tag: &str) -> anyhow::Result<u64> {
        Ok(self.expect_values(tag, 1).await?[0])
    }

    /// Waits for `(tag, v1, ..., vk)` of `k` unsigned integers and returns them.
    async fn expect_values(&mut self, tag: &str, k: usize) -> anyhow::Result<Vec<u64>> {
        let got = self.next().await?;
        let values = match got.as_array().map(Vec::as_slice) {
            Some([Value::Text(t), rest @ ..]) if t == tag && rest.len() == k => rest
                .iter()
                .map(|v| match v {
                    Value::Integer(i) => u64::try_from(*i).ok(),
                    _ => None,
                })
                .collect::<Option<Vec<u64>>>(),
            _ => None,
        };
        values.with_context(|| format!("expected ({tag}, {k} counts), got {got:?}"))
    }

    /// Polls the process count every [`POLL`] until it is at most `base`; false if that takes
    /// longer than [`PATIENCE`].
    fn wait_count(&self, base: usize) -> bool {
        let deadline = Instant::now() + PATIENCE;
        while self.node.process_count() > base {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(POLL);
        }
        true
    }

    /// The runtime's accounting of process memory: the sum of the linear memories.
    fn process_memory(&self) -> u64 {
        self.node.processes().iter().map(|p| p.memory).sum()
    }
}

/// W1: `n` ping-pong round trips between two processes of one node. Returns rtt_per_s and
/// mean_rtt_us.
async fn w1(n: u64) -> anyhow::Result<Vec<f64>> {
    let mut rep = Rep::start(2).await?;
    let driver = rep.driver("w1", vec![int(n)], false).await?;
    let started = Instant::now();
    rep.go(driver).await?;
    rep.expect(&text("done")).await?;
    let secs = started.elapsed().as_secs_f64();
    rep.finish()?;
    Ok(vec![n as f64 / secs, secs / n as f64 * 1e6])
}

/// W4a: `n` spawns of processes that end at once, timed until the process count is back to
/// its value before the run. Returns spawns_per_s and mean_us.
async fn w4a(n: u64, guest: Guest) -> anyhow::Result<Vec<f64>> {
    let mut rep = Rep::start_with(1, guest).await?;
    let driver = rep.driver("w4a", vec![int(n)], false).await?;
    let base = rep.node.process_count();
    let started = Instant::now();
    rep.go(driver).await?;
    let waits = rep.expect_count("done").await?;
    let spawned = started.elapsed().as_secs_f64();
    ensure!(rep.wait_count(base), "processes still alive after {PATIENCE:?}");
    let secs = started.elapsed().as_secs_f64();
    eprintln!("#   W4a spawn calls done after {spawned:.3} s; 1 ms waits on a full pool: {waits}");
    rep.stop(driver).await?;
    rep.finish()?;
    Ok(vec![n as f64 / secs, secs / n as f64 * 1e6])
}

/// W4b: `n` spawns of processes that stay alive, then memory per process. Returns
/// spawns_per_s (until every child has reported it is up), bytes_per_proc (the runtime's
/// accounting), rss_bytes_per_proc, spawn_calls_per_s (until the spawn calls returned,
/// before the children have been instantiated: the point where Erlang's spawn returns), and
/// heap_bytes_per_proc (host heap the processes hold, part of which the RSS difference misses
/// when it reuses pages freed earlier; see [`heap`]).
async fn w4b(n: u64, guest: Guest) -> anyhow::Result<Vec<f64>> {
    let mut rep = Rep::start_with(n + 1, guest).await?;
    let driver = rep.driver("w4b", vec![int(n)], false).await?;
    let base = rep.node.process_count();
    let memory_before = rep.process_memory();
    // Heap pages that earlier repetitions freed would otherwise stay resident, and a run
    // whose processes reuse them (not always: mimalloc's heaps are per thread, and each
    // repetition's node has new threads) would count none of the heap they hold: the RSS
    // per process came out as 24.6 KB in some runs and 38 KB in others, for the same build.
    // Returned to the system first, every page the processes use is counted.
    // SAFETY: `mi_collect` only frees memory no one holds; any thread may call it.
    unsafe { libmimalloc_sys::mi_collect(true) };
    let rss_before = rss_bytes()?;
    heap::start();
    let started = Instant::now();
    rep.go(driver).await?;
    ensure!(rep.expect_count("spawned").await? == n, "spawned count");
    let calls = started.elapsed().as_secs_f64();
    ensure!(rep.expect_count("done").await? == n, "up count");
    let secs = started.elapsed().as_secs_f64();
    std::thread::sleep(SETTLE);
    let memory_after = rep.process_memory();
    let rss_after = rss_bytes()?;
    let heap = heap::stop();
    let alive = rep.node.process_count() - base;
    ensure!(alive >= n as usize, "only {alive} of {n} processes alive");
    // Teardown (untimed): the driver stops its children and ends.
    rep.stop(driver).await?;
    rep.finish()?;
    let per_proc = |before: u64, after: u64| (after as f64 - before as f64) / n as f64;
    Ok(vec![
        n as f64 / secs,
        per_proc(memory_before, memory_after),
        per_proc(rss_before, rss_after),
        n as f64 / calls,
        heap as f64 / n as f64,
    ])
}

/// This OS process's resident set size (VmRSS), in bytes.
fn rss_bytes() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")).context("no VmRSS in /proc/self/status")?;
    let kb = line.trim().trim_end_matches("kB").trim();
    Ok(kb.parse::<u64>().with_context(|| format!("bad VmRSS {line}"))? * 1024)
}

/// Prints the driver's own total next to the host's wall time from go to report.
fn note_wall(id: &str, total_ns: u64, wall: Duration) {
    eprintln!(
        "#   {id} driver's total {:.3} s, host's go-to-report {:.3} s",
        total_ns as f64 / 1e9,
        wall.as_secs_f64()
    );
}

/// W2: `pong` registered on B, `n` round trips from a driver on A addressing it by name and
/// node, each timed by the driver. Returns p50_us, p99_us, rtt_per_s and mean_rtt_us.
async fn w2(cluster: &Cluster, n: u64) -> anyhow::Result<Vec<f64>> {
    let mut rep = Rep::start_in(cluster).await?;
    let (pong, pong_monitor) = rep.spawn_on(B_NAME, "w2_pong", &cluster.bench_bytes, vec![]).await?;
    rep.expect(&text("ready")).await?;
    let driver = rep.driver("w2", vec![int(n), text(B_NAME)], true).await?;
    let started = Instant::now();
    rep.go(driver).await?;
    let done = rep.expect_values("done", 3).await?;
    note_wall("W2", done[2], started.elapsed());
    // Untimed: stop pong and wait until its name is free for the next repetition.
    rep.stop(pong).await?;
    rep.wait_down(pong_monitor).await?;
    rep.finish()?;
    let (p50, p99, total) = (done[0] as f64 / 1e3, done[1] as f64 / 1e3, done[2] as f64 / 1e3);
    Ok(vec![p50, p99, n as f64 / (total / 1e6), total / n as f64])
}

/// W3 (W3b with 64 KiB): a sink on B, `n` messages `("data", payload)` of `size` payload
/// bytes from a driver on A, then `("done", A)` and the sink's `("ack", count)`. Returns
/// msgs_per_s and mb_per_s (W3b: the other way round).
async fn w3(cluster: &Cluster, n: u64, size: u64) -> anyhow::Result<Vec<f64>> {
    let mut rep = Rep::start_in(cluster).await?;
    let (sink, sink_monitor) = rep.spawn_on(B_NAME, "w3_sink", &cluster.bench_bytes, vec![]).await?;
    rep.expect(&text("ready")).await?;
    let sink_value = rep.node.pid_value(sink);
    let driver = rep.driver("w3", vec![int(n), int(size), sink_value], true).await?;
    let started = Instant::now();
    rep.go(driver).await?;
    let done = rep.expect_values("done", 2).await?;
    let id = if size == SMALL_PAYLOAD { "W3" } else { "W3b" };
    note_wall(id, done[1], started.elapsed());
    ensure!(done[0] == n, "the sink counted {} messages of {n}", done[0]);
    rep.wait_down(sink_monitor).await?;
    rep.finish()?;
    let secs = done[1] as f64 / 1e9;
    let (msgs, mb) = (n as f64 / secs, (n * size) as f64 / 1e6 / secs);
    Ok(if size == SMALL_PAYLOAD { vec![msgs, mb] } else { vec![mb, msgs] })
}

/// Runs the self-timing driver `entry` on A against B for `n` operations and returns its
/// three `done` values, the last its total in ns (W5, W7).
async fn remote_driver(cluster: &Cluster, id: &str, entry: &str, n: u64) -> anyhow::Result<Vec<u64>> {
    let mut rep = Rep::start_in(cluster).await?;
    let driver = rep.driver(entry, vec![int(n), text(B_NAME)], true).await?;
    let started = Instant::now();
    rep.go(driver).await?;
    let done = rep.expect_values("done", 3).await?;
    note_wall(id, done[2], started.elapsed());
    rep.finish()?;
    Ok(done)
}

/// W5: a driver on A spawns `n` processes on B one after another, each sending
/// `("child", self())` back, timing each. Returns spawns_per_s, mean_us, p50_us and p99_us.
async fn w5(cluster: &Cluster, n: u64) -> anyhow::Result<Vec<f64>> {
    let done = remote_driver(cluster, "W5", "w5", n).await?;
    let (p50, p99, total) = (done[0] as f64 / 1e3, done[1] as f64 / 1e3, done[2] as f64 / 1e3);
    Ok(vec![n as f64 / (total / 1e6), total / n as f64, p50, p99])
}

/// W7: the driver on A calls `nop` on `[B]` with `rpc::multicall`, n times, one after
/// another, checking each answer, and times itself. Returns calls_per_s and mean_us.
async fn w7(cluster: &Cluster, n: u64) -> anyhow::Result<Vec<f64>> {
    let done = remote_driver(cluster, "W7", "w7", n).await?;
    let total_us = done[2] as f64 / 1e3;
    Ok(vec![n as f64 / (total_us / 1e6), total_us / n as f64])
}

/// The SDK build of a workload's guest: without std (tests/lean-guests) or with it
/// (tests/guests).
#[derive(Clone, Copy)]
enum Guest {
    Lean,
    Std,
}

impl Guest {
    /// The bench guest on this build (the lean one has the W4a and W4b drivers only).
    fn bench(self) -> &'static str {
        match self {
            Guest::Lean => guests::LEAN_BENCH,
            Guest::Std => guests::BENCH,
        }
    }
}

/// W5b: a fresh peer with an empty disk cache, and `k` distinct modules it has never seen
/// (a hello `guest` with a distinct custom section each); per module, timed by a host
/// process of A on A's runtime: ship + compile + first spawn + its hello. Returns p50_us,
/// mean_us, p99_us and module_bytes.
async fn w5b(cluster: &Cluster, k: u64, guest: Guest) -> anyhow::Result<Vec<f64>> {
    let seq = next_seq();
    let name = format!("benchb5b{seq}@localhost");
    let peer = cluster.start_peer(&name, &cluster.cookie)?;
    let rep = Rep::start_in(cluster).await?;
    rep.node.connect(&name).await.with_context(|| format!("connecting to {name}"))?;
    // The timing runs in a task on A's runtime, by a host process of A (as Erlang's harness
    // times in a process of node A): from the bench's own runtime, each module would pay two
    // wake-ups across threads more.
    let mut me = rep.node.host_process();
    let args = cbor::to_bytes(&Value::Array(vec![rep.node.pid_value(me.pid())]));
    // Untimed: build the modules and their requests (hashing them).
    let modules: Vec<(SpawnRequest, String, usize)> = (0..k)
        .map(|i| {
            let bytes = spore_tests::with_custom_section(
                match guest {
                    Guest::Lean => &cluster.lean_hello_bytes,
                    Guest::Std => &cluster.hello_bytes,
                },
                "spore-bench-w5b",
                format!("{seq}/{i}").as_bytes(),
            );
            let len = bytes.len();
            let request = SpawnRequest::from_bytes(bytes, "hello").args(args.clone());
            let id = request.module.to_string();
            (request, id, len)
        })
        .collect();
    let shipped_before = rep.node.stats().modules_shipped;
    let b = name.clone();
    let timed = rep.node.handle().spawn(async move {
        let mut timed = Vec::with_capacity(modules.len());
        for (request, id, len) in modules {
            let started = Instant::now();
            let pid = me.spawn_on(&b, request).await.with_context(|| format!("spawning module {id}"))?;
            let hello = match me.receive(&[], Some(PATIENCE)).await {
                Some(Incoming::Message(m)) => m.payload,
                other => bail!("module {id}: expected its hello, got {other:?}"),
            };
            timed.push((started.elapsed().as_secs_f64() * 1e6, id, len, pid, hello));
        }
        Ok::<_, anyhow::Error>(timed)
    });
    let mut samples = Vec::with_capacity(k as usize);
    let mut module_bytes = 0;
    for (us, id, len, pid, hello) in timed.await.context("W5b's timing task")?? {
        samples.push(us);
        module_bytes += len;
        let hello: Value = cbor::from_bytes(&hello).context("a hello that is not CBOR")?;
        let expected =
            Value::Array(vec![Value::Text(id.clone()), rep.node.pid_value(pid), Value::Text("hello".into())]);
        ensure!(hello == expected, "expected {expected:?}, got {hello:?}");
    }
    let shipped = rep.node.stats().modules_shipped - shipped_before;
    ensure!(shipped == k, "{shipped} of {k} modules were shipped");
    rep.finish()?;
    drop(peer);
    let count = samples.len() as f64;
    let (p50, p99, mean) = latency_stats(&mut samples);
    Ok(vec![p50, mean, p99, module_bytes as f64 / count])
}

/// Connects `a` to `name`, within [`CONNECT_PATIENCE`], and returns how long it took: timed
/// by a host process of `a`, in a task on `a`'s runtime, as Erlang's harness times a connect
/// in a process of node A.
async fn timed_connect(a: &Node, me: &Arc<HostProcess>, name: &str) -> (Result<(), ConnectError>, f64) {
    let (me, owned) = (Arc::clone(me), name.to_owned());
    let task = a.handle().spawn(async move {
        let started = Instant::now();
        let result = me.connect(&owned).await;
        (result, started.elapsed().as_secs_f64() * 1e6)
    });
    let abort = task.abort_handle();
    match tokio::time::timeout(CONNECT_PATIENCE, task).await {
        Ok(Ok(timed)) => timed,
        Ok(Err(e)) => {
            (Err(ConnectError::Transport { node: name.to_owned(), reason: format!("timing task: {e}") }), 0.0)
        }
        Err(_) => {
            abort.abort();
            (Err(ConnectError::Transport { node: name.to_owned(), reason: "bench timeout".into() }), 0.0)
        }
    }
}

/// Connects `a` to `name` from the bench's own runtime ([`Node::connect`]), within
/// [`CONNECT_PATIENCE`], and returns how long it took (a diagnostic beside [`timed_connect`]).
async fn timed_connect_from_outside(a: &Node, name: &str) -> (Result<(), ConnectError>, f64) {
    let started = Instant::now();
    let result = match tokio::time::timeout(CONNECT_PATIENCE, a.connect(name)).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Transport { node: name.to_owned(), reason: "bench timeout".into() }),
    };
    (result, started.elapsed().as_secs_f64() * 1e6)
}

/// Waits (untimed, polling) until `a` no longer lists `name` among its nodes.
async fn wait_disconnected(a: &Node, name: &str) -> anyhow::Result<()> {
    let until = Instant::now() + CONNECT_PATIENCE;
    while a.nodes().iter().any(|n| n == name) {
        ensure!(Instant::now() < until, "{name} still connected after {CONNECT_PATIENCE:?}");
        tokio::time::sleep(Duration::from_micros(100)).await;
    }
    Ok(())
}

/// W6: from a fresh A, one connect to a fresh C, `m` disconnect/connect cycles, then one
/// plus [`Cluster::rejects`] (normally [`W6_REJECTS`]) connects to a fresh X with another cookie. Returns connect_us,
/// reconnect_p50_us, reconnect_p99_us, reject_first_us, reject_p50_us and rejected (1 if
/// every attempt to X failed with the cookie error).
async fn w6(cluster: &Cluster, m: u64) -> anyhow::Result<Vec<f64>> {
    let seq = next_seq();
    let (c_name, x_name) = (format!("benchc{seq}@localhost"), format!("benchx{seq}@localhost"));
    let c = cluster.start_peer(&c_name, &cluster.cookie)?;
    let x = cluster.start_peer(&x_name, &format!("{}-but-another", cluster.cookie))?;
    let a = cluster.node_a()?;
    ensure!(a.nodes().is_empty(), "a fresh node A has connections: {:?}", a.nodes());
    let me = Arc::new(a.host_process());
    // (a) The first connect.
    let (result, connect_us) = timed_connect(&a, &me, &c_name).await;
    result.with_context(|| format!("connecting to {c_name}"))?;
    // (b) Reconnects; after every second one, a reconnect called from the bench's own
    // runtime, as a diagnostic (untimed for the results).
    let mut reconnects = Vec::with_capacity(m as usize);
    let mut from_outside = Vec::with_capacity(m as usize / 2);
    for cycle in 0..m {
        let ways: &[bool] = if cycle % 2 == 1 { &[false, true] } else { &[false] };
        for &outside in ways {
            ensure!(a.disconnect(&c_name), "cycle {cycle}: not connected to {c_name}");
            wait_disconnected(&a, &c_name).await?;
            tokio::time::sleep(W6_DOWN_PAUSE).await;
            ensure!(!a.nodes().contains(&c_name), "cycle {cycle}: {c_name} came back by itself");
            let (result, us) = if outside {
                timed_connect_from_outside(&a, &c_name).await
            } else {
                timed_connect(&a, &me, &c_name).await
            };
            result.with_context(|| format!("cycle {cycle}: reconnecting to {c_name}"))?;
            if outside { &mut from_outside } else { &mut reconnects }.push(us);
        }
    }
    let (outside_p50, _, _) = latency_stats(&mut from_outside);
    eprintln!(
        "#   W6 reconnect called from the bench's own runtime (Node::connect: two wake-ups across threads more) p50_us={} n={}",
        fmt(outside_p50),
        from_outside.len()
    );
    // (c) C is shut down; connects to X must fail because of the cookie.
    a.disconnect(&c_name);
    wait_disconnected(&a, &c_name).await?;
    drop(c);
    let mut rejected = true;
    let mut reject_first_us = 0.0;
    let mut rejects = Vec::with_capacity(cluster.rejects);
    for attempt in 0..=cluster.rejects {
        if attempt > 0 {
            tokio::time::sleep(W6_REJECT_PAUSE).await;
        }
        let (result, us) = timed_connect(&a, &me, &x_name).await;
        if !matches!(result, Err(ConnectError::Cookie { .. })) {
            if rejected {
                eprintln!("#   W6 attempt {attempt} to {x_name} (wrong cookie): {result:?}");
            }
            rejected = false;
        }
        if attempt == 0 {
            reject_first_us = us;
        } else {
            rejects.push(us);
        }
    }
    // Diagnostic (untimed for the results): what a connect to another host's node spends
    // on the port mapper.
    let mut lookups = Vec::with_capacity(20);
    for _ in 0..20 {
        let started = Instant::now();
        spore_host::mapper::lookup(&x_name, cluster.mapper).await.context("port mapper lookup")?;
        lookups.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let (lookup_p50, _, _) = latency_stats(&mut lookups);
    eprintln!(
        "#   W6 port mapper lookup over TCP (a node of another host; A reads its copy of this host's table) p50_us={}",
        fmt(lookup_p50)
    );
    drop(x);
    let (reconnect_p50, reconnect_p99, _) = latency_stats(&mut reconnects);
    let (reject_p50, _, _) = latency_stats(&mut rejects);
    Ok(vec![
        connect_us,
        reconnect_p50,
        reconnect_p99,
        reject_first_us,
        reject_p50,
        if rejected { 1.0 } else { 0.0 },
    ])
}

/// The floor's echo side (this binary run with `--floor-echo`): prints its UDP, TCP and QUIC
/// ports, echoes UDP datagrams until a 1-byte one, then one TCP connection until it closes,
/// then the QUIC floor's connection ([`quic_floor::Echo::serve`]).
fn floor_echo() -> anyhow::Result<()> {
    let udp = UdpSocket::bind("127.0.0.1:0")?;
    let tcp = TcpListener::bind("127.0.0.1:0")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let quic = quic_floor::Echo::bind(&runtime)?;
    println!("{} {} {}", udp.local_addr()?.port(), tcp.local_addr()?.port(), quic.port());
    std::io::stdout().flush()?;
    let mut buf = [0u8; 64];
    loop {
        let (len, from) = udp.recv_from(&mut buf)?;
        if len == 1 {
            break;
        }
        udp.send_to(&buf[..len], from)?;
    }
    let (mut stream, _) = tcp.accept()?;
    stream.set_nodelay(true)?;
    while stream.read_exact(&mut buf).is_ok() {
        stream.write_all(&buf)?;
    }
    runtime.block_on(quic.serve())
}

/// The loopback floor: `n` timed 64-byte round trips over UDP and over TCP (NODELAY) with
/// an echo process placed as node B, as the spec's C tool does, then over QUIC between two of
/// Spore's transports ([`quic_floor`]). Returns the `FLOOR` lines.
fn floor(pin: Pin, n: usize) -> anyhow::Result<Vec<String>> {
    let exe = std::env::current_exe().context("locating this binary")?;
    let mut cmd = pin.command_for_other(&exe);
    cmd.arg("--floor-echo").env(PINNED_ENV, "1").stdin(Stdio::null()).stdout(Stdio::piped());
    let mut echo = ChildGuard(cmd.spawn().context("starting the echo process")?);
    let mut first = String::new();
    BufReader::new(echo.0.stdout.take().context("echo stdout")?).read_line(&mut first)?;
    let ports: Vec<u16> = first.split_whitespace().filter_map(|p| p.parse().ok()).collect();
    let [udp_port, tcp_port, quic_port] = ports[..] else { bail!("the echo process said {first:?}") };
    let mut buf = [7u8; 64];
    let mut lines = Vec::new();

    let udp = UdpSocket::bind("127.0.0.1:0")?;
    udp.connect(("127.0.0.1", udp_port))?;
    let mut udp_round_trip = || -> std::io::Result<()> {
        udp.send(&buf)?;
        let got = udp.recv(&mut buf)?;
        if got == 64 { Ok(()) } else { Err(std::io::Error::other(format!("echoed {got} bytes"))) }
    };
    lines.push(floor_line("udp64", n, pin, &mut udp_round_trip)?);
    udp.send(&[1])?;

    let mut tcp = TcpStream::connect(("127.0.0.1", tcp_port))?;
    tcp.set_nodelay(true)?;
    let mut tcp_round_trip = || -> std::io::Result<()> {
        tcp.write_all(&buf)?;
        tcp.read_exact(&mut buf)
    };
    lines.push(floor_line("tcp64", n, pin, &mut tcp_round_trip)?);
    drop(tcp);

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let quic =
        runtime.block_on(quic_floor::round_trips(quic_port, n, FLOOR_WARM_UP)).context("QUIC floor")?;
    for mut timed in quic {
        lines.push(floor_result(timed.what, "rtt_per_s", &mut timed.samples, timed.total, pin));
    }
    let status = echo.0.wait()?;
    ensure!(status.success(), "the echo process ended with {status}");
    Ok(lines)
}

/// W4a's wasmtime floor: `n` times (after [`FLOOR_WARM_UP`] untimed), a store of a fresh
/// node's engine, W4a's child (the lean bench guest) instantiated in it, its `nop` entry
/// called and the store dropped. That is what a W4a spawn costs in wasmtime alone, on the
/// node's own engine settings, without any of Spore's work (no spawn call, process entry,
/// task or end of process; the guest's imports trap, and `nop` calls none). Returns the
/// `FLOOR wasm-spawn` line.
async fn spawn_floor(pin: Pin, n: usize) -> anyhow::Result<String> {
    use wasmtime::component::{Component, Linker};
    let config = NodeConfig {
        name: "floor@localhost".to_owned(),
        max_processes: max_processes(1),
        cache_dir: CacheDir::Path(spore_tests::cache_dir()),
        compiler: compiler(),
        copy_on_write: copy_on_write(),
        ..NodeConfig::default()
    };
    let node = start_node(config)?;
    let engine = node.engine();
    let component = Component::from_file(engine, guests::LEAN_BENCH)
        .map_err(|e| anyhow::anyhow!("compiling the lean bench guest: {e:#}"))?;
    let mut linker = Linker::<()>::new(engine);
    linker.define_unknown_imports_as_traps(&component)?;
    let pre = linker.instantiate_pre(&component)?;
    // W4a's child gets `()` as its argument: CBOR null.
    let args: &[u8] = &[0xf6];
    let mut samples = Vec::with_capacity(n);
    let mut started = Instant::now();
    for i in 0..FLOOR_WARM_UP + n {
        if i == FLOOR_WARM_UP {
            started = Instant::now();
        }
        let t = Instant::now();
        let mut store = wasmtime::Store::new(engine, ());
        store.epoch_deadline_async_yield_and_update(1);
        let instance = pre.instantiate_async(&mut store).await?;
        let start = instance.get_typed_func::<(&str, &[u8]), ()>(&mut store, "start")?;
        start.call_async(&mut store, ("nop", args)).await?;
        drop(store);
        if i >= FLOOR_WARM_UP {
            samples.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    Ok(floor_result("wasm-spawn", "spawns_per_s", &mut samples, started.elapsed().as_secs_f64(), pin))
}

/// Times `n` calls of `round_trip` (after [`FLOOR_WARM_UP`] untimed ones) and makes the
/// `FLOOR <what>` line.
fn floor_line(
    what: &str,
    n: usize,
    pin: Pin,
    round_trip: &mut dyn FnMut() -> std::io::Result<()>,
) -> anyhow::Result<String> {
    for _ in 0..FLOOR_WARM_UP {
        round_trip()?;
    }
    let mut samples = Vec::with_capacity(n);
    let started = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        round_trip()?;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(floor_result(what, "rtt_per_s", &mut samples, started.elapsed().as_secs_f64(), pin))
}

/// The `FLOOR <what>` line of timed `samples` (µs each) that took `total` seconds in all,
/// with the rate under `rate_key`.
fn floor_result(what: &str, rate_key: &str, samples: &mut [f64], total: f64, pin: Pin) -> String {
    let n = samples.len();
    let (p50, p99, _) = latency_stats(samples);
    format!(
        "FLOOR {what} p50_us={} p99_us={} mean_us={} {rate_key}={} n={n} pin={}",
        fmt(p50),
        fmt(p99),
        fmt(total * 1e6 / n as f64),
        fmt(n as f64 / total),
        pin.name()
    )
}
