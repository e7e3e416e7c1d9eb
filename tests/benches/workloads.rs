//! The local benchmark workloads of shared/bench/WORKLOADS.md on a Spore node: W1 (local
//! ping-pong), W4a (spawns of processes that exit at once), W4b (spawns of processes that stay
//! alive, and memory per process).
//!
//! ```sh
//! cargo bench --bench workloads                    # full N, 1 warm-up + 5 measured reps
//! cargo bench --bench workloads -- --quick         # small N, 1 warm-up + 2 reps
//! cargo bench --bench workloads -- --only W1,W4b   # some workloads (or name them: W4a)
//! cargo bench --bench workloads -- --n W1=200000 --reps 3
//! ```
//!
//! The guest side is tests/guests/examples/bench.rs: a driver entry per workload, spawned by
//! the host, which reports to a host process. Wall time is measured here, on the host, from
//! the host's `"go"` to the driver's report (W4a: until the node's process count is back to
//! its value before the run, polled every 1 ms, as the Erlang harness does).
//!
//! Output follows the spec: one line per workload on stdout,
//! `<ID> spore <key>=<median> ... n=<N> reps=<R> pin=<placement> sched=<threads>
//! range:<key>=<min>..<max> ...`; raw per-repetition values and notes go to stderr after `#`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use ciborium::Value;
use spore_host::config::DEFAULT_MAX_PROCESSES;
use spore_host::{CacheDir, HostProcess, Incoming, ModuleId, Node, NodeConfig, Pid, SpawnRequest, cbor};
use spore_tests::{guests, int, text};

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
    /// Runs one repetition on a fresh node and returns one value per key.
    run: fn(&tokio::runtime::Runtime, u64) -> anyhow::Result<Vec<f64>>,
}

/// The workloads, in the order they run.
const WORKLOADS: &[Workload] = &[
    Workload {
        id: "W1",
        keys: &["rtt_per_s", "mean_rtt_us"],
        n: 500_000,
        quick_n: 100_000,
        n_note: "spec N is 5000000; lowered so that one repetition lasts 1-10 s here",
        run: |rt, n| rt.block_on(w1(n)),
    },
    Workload {
        id: "W4a",
        keys: &["spawns_per_s", "mean_us"],
        n: 100_000,
        quick_n: 20_000,
        n_note: "spec N is 2000000; lowered so that one repetition lasts 1-10 s here",
        run: |rt, n| rt.block_on(w4a(n)),
    },
    Workload {
        id: "W4b",
        keys: &["spawns_per_s", "bytes_per_proc", "rss_bytes_per_proc", "spawn_calls_per_s"],
        n: 10_000,
        quick_n: 2_000,
        n_note: "spec N is 100000; each live instance costs about four kernel memory mappings, so \
                 vm.max_map_count caps live processes near max_map_count / 4",
        run: |rt, n| rt.block_on(w4b(n)),
    },
];

/// Command-line options. Unknown arguments (such as the `--bench` cargo passes) are ignored.
struct Options {
    /// Small N and fewer repetitions.
    quick: bool,
    /// Run only these workloads (all when empty).
    only: Vec<String>,
    /// Measured repetitions.
    reps: usize,
    /// N overrides, by workload id.
    n: Vec<(String, u64)>,
}

impl Options {
    /// Parses the process's arguments.
    fn parse() -> anyhow::Result<Self> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = args.iter().any(|a| a == "--quick");
        let mut options =
            Options { quick, only: Vec::new(), reps: if quick { QUICK_REPS } else { REPS }, n: Vec::new() };
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
                    options.n.push((id.to_owned(), n));
                }
                id if WORKLOADS.iter().any(|w| w.id == id) => options.only.push(id.to_owned()),
                _ => {}
            }
        }
        if let Some(unknown) = options.only.iter().find(|id| !WORKLOADS.iter().any(|w| w.id == *id)) {
            bail!("unknown workload {unknown} (known: W1, W4a, W4b)");
        }
        Ok(options)
    }
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let sched = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pin = placement();
    eprintln!(
        "# each repetition runs on a fresh Node in this one OS process (the spec asks for a new \
         process per repetition); nodes use NodeConfig defaults"
    );
    for workload in WORKLOADS {
        if !options.only.is_empty() && !options.only.iter().any(|id| id == workload.id) {
            continue;
        }
        let given = options.n.iter().find(|(id, _)| id == workload.id).map(|(_, n)| *n);
        let (n, why) = match given {
            Some(n) => (n, "set with --n"),
            None if options.quick => (workload.quick_n, "--quick"),
            None => (workload.n, workload.n_note),
        };
        eprintln!("# {}: n={n} ({why}{})", workload.id, map_count_note(workload.id));
        let warm_up = Instant::now();
        (workload.run)(&runtime, n).with_context(|| format!("{} warm-up", workload.id))?;
        eprintln!("# {} warm-up took {:.2} s", workload.id, warm_up.elapsed().as_secs_f64());
        let mut samples = Vec::with_capacity(options.reps);
        for rep in 1..=options.reps {
            let started = Instant::now();
            let values = (workload.run)(&runtime, n).with_context(|| format!("{} rep {rep}", workload.id))?;
            let took = started.elapsed().as_secs_f64();
            eprintln!(
                "# {} spore rep={rep} {} rep_s={took:.2}",
                workload.id,
                key_values(workload.keys, &values)
            );
            samples.push(values);
        }
        let mut line = result_line(workload, n, options.reps, &pin, sched, &samples);
        // Only W4b keeps more than a few processes alive at once.
        if workload.id == "W4b" && max_processes(n + 1) != DEFAULT_MAX_PROCESSES {
            line.push_str(&format!(" max_processes={}", max_processes(n + 1)));
        }
        println!("{line}");
    }
    Ok(())
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
    let medians: Vec<f64> = columns.iter().map(|c| median(c)).collect();
    let ranges: Vec<String> = workload
        .keys
        .iter()
        .zip(&columns)
        .map(|(key, c)| format!("range:{key}={}..{}", fmt(c[0]), fmt(c[c.len() - 1])))
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
    keys.iter().zip(values).map(|(k, v)| format!("{k}={}", fmt(*v))).collect::<Vec<_>>().join(" ")
}

/// The median of sorted, non-empty `values` (the mean of the middle two for an even count,
/// as the Erlang harness does).
fn median(values: &[f64]) -> f64 {
    let l = values.len();
    if l % 2 == 1 { values[l / 2] } else { (values[l / 2 - 1] + values[l / 2]) / 2.0 }
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

/// The CPU placement: `none` when this process may use every online CPU, else
/// `taskset:<cpus>` (run under `taskset -c 0` for the spec's `same`/`split`, which are the
/// same thing for one node).
fn placement() -> String {
    let allowed = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:").map(|v| v.trim().to_owned()))
    });
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").ok().map(|s| s.trim().to_owned());
    match (allowed, online) {
        (Some(allowed), Some(online)) if allowed != online => format!("taskset:{allowed}"),
        _ => "none".to_owned(),
    }
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
    needed.max(DEFAULT_MAX_PROCESSES)
}

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

/// One repetition's node, the bench guest loaded on it, and the host process drivers report
/// to.
struct Rep {
    /// Where the drivers report.
    me: HostProcess,
    /// The bench guest.
    module: ModuleId,
    /// A fresh node with default settings (and the tests' compiled-module cache), but see
    /// [`max_processes`].
    node: Node,
}

impl Rep {
    /// Starts a node with room for at least `processes` guests and loads the bench guest
    /// (untimed).
    async fn start(processes: u64) -> anyhow::Result<Self> {
        let config = NodeConfig {
            name: "bench@localhost".to_owned(),
            max_processes: max_processes(processes),
            cache_dir: CacheDir::Path(spore_tests::cache_dir()),
            ..NodeConfig::default()
        };
        let node = start_node(config)?;
        let module =
            node.load_file(guests::BENCH).await.with_context(|| format!("loading {}", guests::BENCH))?;
        let me = node.host_process();
        Ok(Rep { me, module, node })
    }

    /// Waits (untimed) until only the host process is left, so that the node is idle when it
    /// is dropped and its instance pool is released soon after.
    fn finish(self) -> anyhow::Result<()> {
        ensure!(self.wait_count(1), "processes still alive after {PATIENCE:?}");
        Ok(())
    }

    /// Spawns the driver `entry` with `(n, reply_to)`, monitored so that its crash ends the
    /// repetition instead of a wait, and waits until it is ready.
    async fn driver(&self, entry: &str, n: u64) -> anyhow::Result<Pid> {
        let args = Value::Array(vec![int(n), self.node.pid_value(self.me.pid())]);
        let request = SpawnRequest::new(self.module, entry).args(cbor::to_bytes(&args));
        let (pid, _monitor) = self.me.spawn_monitor(request)?;
        self.expect(&text("ready")).await?;
        Ok(pid)
    }

    /// Sends `"go"` to `driver`.
    async fn go(&self, driver: Pid) -> anyhow::Result<()> {
        Ok(self.me.send(driver, 0, cbor::to_bytes(&text("go"))).await?)
    }

    /// Sends `"stop"` to `driver`.
    async fn stop(&self, driver: Pid) -> anyhow::Result<()> {
        Ok(self.me.send(driver, 0, cbor::to_bytes(&text("stop"))).await?)
    }

    /// Waits for the next message, which must be CBOR; a driver's end before it is an error.
    async fn next(&self) -> anyhow::Result<Value> {
        match self.me.receive(&[], Some(PATIENCE)).await {
            Some(Incoming::Message(m)) => cbor::from_bytes(&m.payload).context("a report that is not CBOR"),
            Some(Incoming::Down { pid, reason, .. }) => bail!("driver {pid} ended early: {reason}"),
            Some(other) => bail!("unexpected {other:?}"),
            None => bail!("no report within {PATIENCE:?}"),
        }
    }

    /// Waits for the message `expected`.
    async fn expect(&self, expected: &Value) -> anyhow::Result<()> {
        let got = self.next().await?;
        ensure!(got == *expected, "expected {expected:?}, got {got:?}");
        Ok(())
    }

    /// Waits for `(tag, count)` and returns the count.
    async fn expect_count(&self, tag: &str) -> anyhow::Result<u64> {
        let got = self.next().await?;
        match got.as_array().map(Vec::as_slice) {
            Some([Value::Text(t), Value::Integer(count)]) if t == tag => {
                u64::try_from(*count).with_context(|| format!("bad count in {got:?}"))
            }
            _ => bail!("expected ({tag}, count), got {got:?}"),
        }
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
    let rep = Rep::start(2).await?;
    let driver = rep.driver("w1", n).await?;
    let started = Instant::now();
    rep.go(driver).await?;
    rep.expect(&text("done")).await?;
    let secs = started.elapsed().as_secs_f64();
    rep.finish()?;
    Ok(vec![n as f64 / secs, secs / n as f64 * 1e6])
}

/// W4a: `n` spawns of processes that end at once, timed until the process count is back to
/// its value before the run. Returns spawns_per_s and mean_us.
async fn w4a(n: u64) -> anyhow::Result<Vec<f64>> {
    let rep = Rep::start(1).await?;
    let driver = rep.driver("w4a", n).await?;
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
/// accounting), rss_bytes_per_proc, and spawn_calls_per_s (until the spawn calls returned,
/// before the children have been instantiated: the point where Erlang's spawn returns).
async fn w4b(n: u64) -> anyhow::Result<Vec<f64>> {
    let rep = Rep::start(n + 1).await?;
    let driver = rep.driver("w4b", n).await?;
    let base = rep.node.process_count();
    let memory_before = rep.process_memory();
    let rss_before = rss_bytes()?;
    let started = Instant::now();
    rep.go(driver).await?;
    ensure!(rep.expect_count("spawned").await? == n, "spawned count");
    let calls = started.elapsed().as_secs_f64();
    ensure!(rep.expect_count("done").await? == n, "up count");
    let secs = started.elapsed().as_secs_f64();
    std::thread::sleep(SETTLE);
    let memory_after = rep.process_memory();
    let rss_after = rss_bytes()?;
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
