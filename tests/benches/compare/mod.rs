//! `--compare`: the Erlang/OTP side of the workloads and the table of ratios.
//!
//! Order of a `--compare` run: the floor, the Spore workloads (node B and every other Spore
//! node are stopped when they end), then tests/benches/erlang/run.sh twice, one run after the
//! other: `DIST=tcp` (result lines labelled `erlang`) and `DIST=tls` (`erlang-tls`, with
//! W3b's N cut to 8 000 as shared/bench/ERLANG-BASELINE.md does). So no two implementations
//! ever run at the same time. Both Erlang runs get the same placement (`PIN`), the same
//! selection of workloads plus W7b (Erlang only: Spore has one call primitive, see W7), the
//! same number of repetitions, a free private epmd port each, and the spec's N (`--n` is for
//! Spore only) unless `--quick` asks for small ones. Their result lines go to stdout as they
//! are and their stderr to stderr. At the end, a markdown table compares every metric that
//! both sides report, and a note names what looks disturbed (repetitions far apart, a UDP
//! floor slower than the TCP one).

use std::io::{BufRead, BufReader};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail, ensure};

use super::{CPUS_ENV, Pin};

/// Workloads only the Erlang side runs: W7b is W7 with Erlang's legacy `rpc` module, and
/// Spore has one call primitive (`rpc::multicall`, measured as W7).
pub const ERLANG_ONLY: &[&str] = &["W7b"];

/// The Erlang harness, owned by this project (copied from shared/bench/erlang/).
const RUN_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/erlang/run.sh");

/// Workloads only Spore runs: W4a, W4b and W5b again with their guests on the SDK with std.
pub const SPORE_ONLY: &[&str] = &["W4a-std", "W4b-std", "W5b-std"];

/// Erlang's N per workload in a `--quick` run: a repetition of a tenth of a second to about a
/// second (W3b over TLS, ~215 MB/s), so that each run.sh takes well under a minute.
const ERLANG_QUICK_N: &[(&str, u64)] = &[
    ("W1", 200_000),
    ("W2", 5_000),
    ("W3", 100_000),
    ("W3b", 4_000),
    ("W4a", 200_000),
    ("W4b", 20_000),
    ("W5", 4_000),
    ("W5b", 20),
    ("W6", 5),
    ("W7", 4_000),
    ("W7b", 4_000),
];

/// W3b's N over TLS in a full run (the baseline's: TLS moves ~215 MB/s, 10x less than TCP).
const TLS_W3B_N: u64 = 8_000;

/// W6 metrics that Spore compares with another Erlang metric. Spore loads no code on demand,
/// so its first contact with a fresh peer compares with Erlang's to a peer that preloaded its
/// code (WORKLOADS.md, W6).
const KEY_MAP: &[(&str, &str, &str)] =
    &[("W6", "connect_us", "connect_preloaded_us"), ("W6", "reject_first_us", "reject_first_preloaded_us")];

/// Erlang's distribution transport.
#[derive(Clone, Copy)]
enum Dist {
    /// Plain TCP with the cookie challenge (`erlang`).
    Tcp,
    /// TLS 1.3 with mutual certificate verification (`erlang-tls`).
    Tls,
}

impl Dist {
    /// run.sh's `DIST`.
    fn name(self) -> &'static str {
        match self {
            Dist::Tcp => "tcp",
            Dist::Tls => "tls",
        }
    }
}

/// What the Erlang runs need from the command line.
pub struct ErlangRun<'a> {
    /// The workload ids, in the spec's order.
    pub ids: &'a [&'a str],
    /// The placement.
    pub pin: Pin,
    /// Measured repetitions.
    pub reps: usize,
    /// Small N.
    pub quick: bool,
}

/// What the Erlang runs printed.
#[derive(Default)]
pub struct ErlangOutput {
    /// Their stdout lines (already printed).
    pub lines: Vec<String>,
    /// Runs that failed part-way (their later workloads have no line), as a note each.
    pub failures: Vec<String>,
}

/// Runs run.sh with `DIST=tcp`, then with `DIST=tls`, and returns what they printed. A run
/// that fails part-way (on this VM Erlang's `global:sync` sometimes times out in W6) keeps
/// the lines it printed and does not stop the other run. Installs Erlang/OTP first if `erl`
/// is missing.
pub fn run_erlang(run: &ErlangRun) -> anyhow::Result<ErlangOutput> {
    let mut output = ErlangOutput::default();
    let ids: Vec<&str> = run.ids.iter().copied().filter(|id| !SPORE_ONLY.contains(id)).collect();
    if ids.is_empty() {
        return Ok(output);
    }
    let erlang_only: Vec<&str> = ids.iter().copied().filter(|id| ERLANG_ONLY.contains(id)).collect();
    if !erlang_only.is_empty() {
        eprintln!(
            "# {}: no spore line: Spore has one call primitive, measured as W7 (Erlang only)",
            erlang_only.join(", ")
        );
    }
    ensure_erlang()?;
    ensure!(on_path("openssl"), "--compare needs openssl for Erlang's TLS run: apt-get install -y openssl");
    for dist in [Dist::Tcp, Dist::Tls] {
        let (lines, failure) = run_sh(run, &ids, dist)?;
        output.lines.extend(lines);
        if let Some(failure) = failure {
            eprintln!("# {failure}; the table shows what it measured before failing");
            output.failures.push(failure);
        }
    }
    Ok(output)
}

/// run.sh's `BENCH_ARGS` for `run`.
fn bench_args(run: &ErlangRun, dist: Dist) -> String {
    let mut args = vec![format!("reps={}", run.reps)];
    if run.quick {
        args.extend(ERLANG_QUICK_N.iter().map(|(id, n)| format!("n{id}={n}")));
    } else if let Dist::Tls = dist {
        args.push(format!("nW3b={TLS_W3B_N}"));
    }
    args.join(" ")
}

/// Runs run.sh once for `dist` on workloads `ids` (those of `run` that Erlang runs), copying
/// its stdout lines to stdout (and returning them, with a note if it failed); its stderr is
/// this process's.
fn run_sh(run: &ErlangRun, ids: &[&str], dist: Dist) -> anyhow::Result<(Vec<String>, Option<String>)> {
    let epmd_port = spore_tests::free_port();
    let args = bench_args(run, dist);
    let mut cmd = unpinned(Path::new(RUN_SH));
    cmd.args(ids)
        .env("DIST", dist.name())
        .env("PIN", run.pin.name())
        .env("EPMD_PORT", epmd_port.to_string())
        .env("BENCH_ARGS", &args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    eprintln!(
        "# erlang: DIST={} PIN={} EPMD_PORT={epmd_port} BENCH_ARGS=\"{args}\" {RUN_SH} {}",
        dist.name(),
        run.pin.name(),
        ids.join(" ")
    );
    let mut child = RunSh(cmd.spawn().with_context(|| format!("starting {RUN_SH}"))?);
    let stdout = child.0.stdout.take().context("run.sh stdout")?;
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading run.sh's output")?;
        println!("{line}");
        lines.push(line);
    }
    let status = child.0.wait()?;
    let failure = (!status.success()).then(|| {
        let last = lines
            .iter()
            .rev()
            .find_map(|l| Measured::parse(l))
            .map_or("none".to_owned(), |m| m.id.to_owned());
        format!("{RUN_SH} (DIST={}) failed ({status}) after workload {last}", dist.name())
    });
    Ok((lines, failure))
}

/// A command running `program` on every CPU this bench could use before it pinned itself (the
/// harness places its nodes with `taskset` itself, and under `PIN=none` they must not inherit
/// node A's CPU).
fn unpinned(program: &Path) -> Command {
    match std::env::var(CPUS_ENV) {
        Ok(cpus) if !cpus.is_empty() => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", &cpus]).arg(program);
            cmd
        }
        _ => Command::new(program),
    }
}

/// The running run.sh: asked to stop (SIGTERM, so that it stops its nodes and epmd) if
/// dropped before it ended.
struct RunSh(Child);

impl Drop for RunSh {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
            let _ = self.0.wait();
        }
    }
}

/// Makes sure `erl` and `erlc` are on PATH: installs Debian's `erlang-nox` if not (with `sudo
/// -n` unless root), or fails saying how to.
fn ensure_erlang() -> anyhow::Result<()> {
    if on_path("erl") && on_path("erlc") {
        return Ok(());
    }
    eprintln!("# erl is not on PATH: installing erlang-nox with apt-get");
    let installed = apt_get(&["install", "-y", "erlang-nox"])
        || (apt_get(&["update"]) && apt_get(&["install", "-y", "erlang-nox"]));
    if !installed || !on_path("erl") || !on_path("erlc") {
        bail!(
            "--compare needs Erlang/OTP (erl, erlc, epmd) and could not install it: run \
             `sudo apt-get update && sudo apt-get install -y erlang-nox` (Debian/Ubuntu), or put \
             an Erlang/OTP 25+ installation on PATH"
        );
    }
    Ok(())
}

/// Runs `apt-get ARGS` (through `sudo -n` unless root), its output on stderr; whether it
/// succeeded.
fn apt_get(args: &[&str]) -> bool {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let mut cmd = if root {
        Command::new("apt-get")
    } else {
        let mut sudo = Command::new("sudo");
        sudo.args(["-n", "apt-get"]);
        sudo
    };
    cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive").stdin(Stdio::null());
    if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
        cmd.stdout(fd);
    }
    cmd.status().is_ok_and(|s| s.success())
}

/// Whether an executable file `program` is in a directory of PATH.
fn on_path(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(dir.join(program)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// A result line, parsed generically: `<ID> <impl> <key>=<value> ... n=...`.
struct Measured<'a> {
    /// The workload id (`FLOOR` for a floor line).
    id: &'a str,
    /// `spore`, `erlang`, `erlang-tls` (for a floor line: `udp64`, `tcp64`, `quic64`, ...).
    implementation: &'a str,
    /// The `key=value` pairs before `n=`, in order.
    values: Vec<(&'a str, &'a str)>,
    /// The `range:key=min..max` fields: each key with its repetitions' min and max.
    ranges: Vec<(&'a str, &'a str, &'a str)>,
}

impl<'a> Measured<'a> {
    /// Parses `line`; `None` unless it is a result line with at least one value.
    fn parse(line: &'a str) -> Option<Self> {
        let mut fields = line.split_whitespace();
        let id = fields.next().filter(|id| !id.starts_with('#'))?;
        let implementation = fields.next()?;
        let values: Vec<(&str, &str)> =
            fields.by_ref().take_while(|f| !f.starts_with("n=")).filter_map(|f| f.split_once('=')).collect();
        let ranges = fields
            .filter_map(|f| {
                let (key, range) = f.strip_prefix("range:")?.split_once('=')?;
                let (min, max) = range.split_once("..")?;
                Some((key, min, max))
            })
            .collect();
        (!values.is_empty()).then_some(Self { id, implementation, values, ranges })
    }

    /// The value of `key`.
    fn get(&self, key: &str) -> Option<&'a str> {
        self.values.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// The min and max of `key` over the repetitions.
    fn range(&self, key: &str) -> Option<(&'a str, &'a str)> {
        self.ranges.iter().find(|(k, _, _)| *k == key).map(|(_, min, max)| (*min, *max))
    }
}

/// The floor line `what` (`udp64`, `tcp64`, `quic64`, `quic64-spin`, `wasm-spawn`), if the
/// run measured it.
fn floor<'m, 'a>(measured: &'m [Measured<'a>], what: &str) -> Option<&'m Measured<'a>> {
    measured.iter().find(|m| m.id == "FLOOR" && m.implementation == what)
}

/// The Erlang metric that Spore's `key` of workload `id` compares with.
fn erlang_key<'a>(id: &str, key: &'a str) -> &'a str {
    KEY_MAP.iter().find(|(i, k, _)| *i == id && *k == key).map_or(key, |(_, _, erlang)| erlang)
}

/// `spore / other` as text: the ratio of two numbers to three significant digits, `same` or
/// `differs` for flags, `–` when a side is missing.
fn ratio(spore: &str, other: Option<&str>) -> String {
    let Some(other) = other else { return "–".into() };
    match (spore.parse::<f64>(), other.parse::<f64>()) {
        (Ok(s), Ok(o)) if o != 0.0 => {
            let r = s / o;
            let digits = (2 - r.abs().log10().floor() as i32).clamp(0, 6) as usize;
            format!("{r:.digits$}")
        }
        (Ok(_), Ok(_)) => "–".into(),
        _ if spore == other => "same".into(),
        _ => "differs".into(),
    }
}

/// The comparison table (markdown) of the result `lines` of a run, for workloads `ids` in
/// order: a row per metric that Spore and Erlang both report, the floor of the run, footnotes.
pub fn table(lines: &[String], failures: &[String], ids: &[&str], pin: &str, quick: bool) -> String {
    let measured: Vec<Measured> = lines.iter().filter_map(|l| Measured::parse(l)).collect();
    let find = |id: &str, implementation: &str| {
        measured.iter().find(|m| m.id == id && m.implementation == implementation)
    };
    let mode = if quick { ", --quick (small N, not for quoting)" } else { "" };
    let mut out = format!("Spore vs Erlang/OTP, pin={pin}{mode}\n\n");
    out.push_str(
        "| workload | metric | erlang | erlang-tls | spore | spore/erlang ¹ | spore/erlang-tls ¹ |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|\n");
    let mut one_sided = Vec::new();
    for &id in ids {
        let (tcp, tls) = (find(id, "erlang"), find(id, "erlang-tls"));
        let Some(spore) = find(id, "spore") else {
            let why = if ERLANG_ONLY.contains(&id) {
                "Erlang's legacy rpc; Spore's calls are W7"
            } else {
                "no spore line"
            };
            one_sided.push(format!("{id} ({why})"));
            continue;
        };
        let mut erlang_used = Vec::new();
        for &(key, value) in &spore.values {
            let other = erlang_key(id, key);
            let (e, t) = (tcp.and_then(|m| m.get(other)), tls.and_then(|m| m.get(other)));
            if e.is_none() && t.is_none() {
                one_sided.push(format!("{id} {key} (spore only)"));
                continue;
            }
            erlang_used.push(other);
            let metric = if other == key { key.to_owned() } else { format!("{key} vs erlang {other} ²") };
            out.push_str(&format!(
                "| {id} | {metric} | {} | {} | {value} | {} | {} |\n",
                e.unwrap_or("–"),
                t.unwrap_or("–"),
                ratio(value, e),
                ratio(value, t)
            ));
        }
        let erlang_keys = tcp.iter().chain(&tls).flat_map(|m| m.values.iter().map(|(k, _)| *k));
        for key in erlang_keys.filter(|k| !erlang_used.contains(k)) {
            let entry = format!("{id} {key} (erlang only)");
            if !one_sided.contains(&entry) {
                one_sided.push(entry);
            }
        }
    }
    out.push('\n');
    out.push_str(&floor_note(&measured, pin));
    out.push_str(&steadiness_note(&measured));
    out.push_str(
        "\n¹ spore / erlang: below 1 is better for Spore for `_us` and byte metrics, above 1 for \
         rates (`_per_s`). Each side ran with its own N (`n=` on its result line), Erlang after \
         Spore, with the same placement.\n",
    );
    if KEY_MAP.iter().any(|(id, _, _)| ids.contains(id)) {
        out.push_str(
            "² W6: Spore loads no code on demand, so its first connect and first rejected attempt \
             compare with Erlang's to a peer that preloaded its code (WORKLOADS.md, W6).\n",
        );
    }
    if !one_sided.is_empty() {
        out.push_str(&format!("Not compared (one side only): {}.\n", one_sided.join(", ")));
    }
    for failure in failures {
        out.push_str(&format!("Incomplete: {failure}; its missing cells show –.\n"));
    }
    out
}

/// A repetition's headline metric (the first of its line) this many times another's marks
/// the line as unsteady. On a quiet VM repetitions stay within about 1.2x of each other;
/// in a disturbed hour some workloads' spread 2-3x while others did not move.
const UNSTEADY_SPREAD: f64 = 1.5;

/// Workloads whose headline metric is one sample per repetition (W6's first connect), which
/// varies by nature: their spread says nothing about the run.
const ONE_SAMPLE_PER_REP: &[&str] = &["W6"];

/// The note naming what looks disturbed in the run: result lines whose repetitions' headline
/// metric spread over [`UNSTEADY_SPREAD`], and a UDP floor slower than the TCP one (on this
/// kind of VM, the sign of an hour when both sides' figures move); empty when none.
fn steadiness_note(measured: &[Measured]) -> String {
    let mut unsteady = Vec::new();
    for m in measured.iter().filter(|m| m.id != "FLOOR" && !ONE_SAMPLE_PER_REP.contains(&m.id)) {
        let Some(&(key, _)) = m.values.first() else { continue };
        let Some((min, max)) = m.range(key) else { continue };
        if let (Ok(lo), Ok(hi)) = (min.parse::<f64>(), max.parse::<f64>())
            && lo > 0.0
            && hi / lo > UNSTEADY_SPREAD
        {
            unsteady.push(format!("{} {} {key} {min}..{max} ({:.1}x)", m.id, m.implementation, hi / lo));
        }
    }
    let p50 = |what: &str| {
        let text = floor(measured, what)?.get("p50_us")?;
        Some((text, text.parse::<f64>().ok()?))
    };
    let mut note = String::new();
    if let (Some((udp, udp_us)), Some((tcp, tcp_us))) = (p50("udp64"), p50("tcp64"))
        && udp_us > tcp_us
    {
        note.push_str(&format!(
            "The UDP floor was slower than the TCP one ({udp} against {tcp} µs): the VM was likely \
             disturbed.\n"
        ));
    }
    if !unsteady.is_empty() {
        note.push_str(&format!(
            "Unsteady (repetitions more than {UNSTEADY_SPREAD}x apart; quote with care): {}.\n",
            unsteady.join(", ")
        ));
    }
    note
}

/// The lines giving the floors measured in the run (UDP and TCP p50; QUIC p50 asleep and
/// spinning; W4a's wasmtime spawn), if they were.
fn floor_note(measured: &[Measured], pin: &str) -> String {
    let value = |what: &str, key: &str| floor(measured, what)?.get(key);
    let mut note = match (value("udp64", "p50_us"), value("tcp64", "p50_us")) {
        (Some(udp), Some(tcp)) => {
            format!(
                "Floor (this run, pin={pin}): 64-byte loopback round trip p50 udp64 {udp} µs, tcp64 {tcp} µs.\n"
            )
        }
        _ => "Loopback floor: not measured in this run (--no-floor, or no remote workload).\n".into(),
    };
    if let (Some(asleep), Some(spinning)) = (value("quic64", "p50_us"), value("quic64-spin", "p50_us")) {
        note.push_str(&format!(
            "QUIC floor (this run): the same round trip on a stream between two of Spore's transports, \
             with nothing of Spore above them, p50 quic64 {asleep} µs waiting asleep, quic64-spin \
             {spinning} µs spinning as nodes do (W2's comparison).\n"
        ));
    }
    if let (Some(mean), Some(rate)) = (value("wasm-spawn", "mean_us"), value("wasm-spawn", "spawns_per_s")) {
        note.push_str(&format!(
            "W4a's wasmtime floor (this run): {mean} µs per instantiation, call and drop of its child \
             without Spore, {rate} spawns/s.\n"
        ));
    }
    note
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_table_notes_the_floors_and_unsteady_lines() {
        let lines: Vec<String> = [
            "FLOOR udp64 p50_us=21.6 p99_us=39.0 mean_us=22.7 rtt_per_s=43957 n=100000 pin=split",
            "FLOOR tcp64 p50_us=16.0 p99_us=38.1 mean_us=20.0 rtt_per_s=49936 n=100000 pin=split",
            "W3 spore msgs_per_s=298621 mb_per_s=19.1 n=1000000 reps=5 pin=split sched=1 \
             range:msgs_per_s=172644..310993 range:mb_per_s=11.0..19.9",
            "W4a spore spawns_per_s=50044 mean_us=20.0 n=100000 reps=5 pin=split sched=1 \
             range:spawns_per_s=48260..53020 range:mean_us=18.9..20.7",
            "W6 spore connect_us=1929 rejected=true n=20 reps=5 pin=split sched=1 \
             range:connect_us=1548..4465 range:rejected=true..true",
            "W3 erlang msgs_per_s=390147 mb_per_s=25.0 n=1000000 reps=5 pin=split sched=1 \
             range:msgs_per_s=364921..418751 range:mb_per_s=23.4..26.8",
            "FLOOR quic64 p50_us=62.0 p99_us=98.1 mean_us=64.1 rtt_per_s=15613 n=100000 pin=split",
            "FLOOR quic64-spin p50_us=29.4 p99_us=60.3 mean_us=31.6 rtt_per_s=31672 n=100000 pin=split",
        ]
        .map(String::from)
        .to_vec();
        let table = super::table(&lines, &[], &["W3", "W4a", "W6"], "split", false);
        assert!(
            table.contains("The UDP floor was slower than the TCP one (21.6 against 16.0 µs)"),
            "{table}"
        );
        assert!(table.contains("p50 quic64 62.0 µs waiting asleep, quic64-spin 29.4 µs spinning"), "{table}");
        let expected = "Unsteady (repetitions more than 1.5x apart; quote with care): \
                        W3 spore msgs_per_s 172644..310993 (1.8x).\n";
        assert!(table.contains(expected), "{table}");
        // Steady lines, and W6's one connect per repetition, are not named.
        let steady = table.lines().find(|l| l.starts_with("Unsteady")).unwrap_or_default();
        assert!(!steady.contains("W4a") && !steady.contains("W6") && !steady.contains("erlang"), "{table}");
        let quiet: Vec<String> = lines[3..].to_vec();
        let table = super::table(&quiet, &[], &["W4a", "W6", "W3"], "split", false);
        assert!(!table.contains("Unsteady") && !table.contains("UDP floor was slower"), "{table}");
    }
}
