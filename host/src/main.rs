//! `spore`: the command-line interface to Spore nodes. Parses arguments and calls the
//! `spore_host` library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::net::IpAddr;

use spore_host::proto::{Query, QueryReply};
use spore_host::{
    CacheDir, Compiler, DistConfig, ExitReason, Grants, LoadError, Node, NodeConfig, Pid, Preopen,
    SpawnRequest, cookie, demo,
};

/// mimalloc instead of glibc's malloc: spawning a process makes dozens of small allocations
/// (wasmtime's store and instance state) that glibc's arenas serve slowly.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Spore runs WebAssembly components as Erlang-style processes: sandboxed, with mailboxes,
/// links and monitors, on nodes that form a cluster.
#[derive(Parser)]
#[command(name = "spore", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run ENTRY of a module on a throwaway local node, print the output of it and of the
    /// processes it spawns, and exit when all have ended (status 0 if ENTRY ended normally).
    Run(RunArgs),
    /// Run the built-in demo: the Erlang tutorial's tut22 on two nodes. This process is node
    /// pong@localhost, a second OS process is ping@localhost (fresh cookie, private port
    /// mapper); `start` runs on pong and spawns ping on the other node, shipping the module
    /// there, and all output comes home here.
    Demo(NodeArgs),
    /// Start a named node that joins a cluster and runs until Ctrl-C.
    Node(NodeCmd),
    /// List the cluster as a node sees it (joins as a hidden node).
    Nodes(NodesCmd),
    /// Ship a module to a node, run ENTRY there, and print here the output of it and of
    /// every process it spawns, on any node; exits when all have ended, with the status of
    /// ENTRY (joins as a hidden node; Ctrl-C kills them).
    Spawn(SpawnCmd),
    /// List the processes of a node (joins as a hidden node).
    Ps(NodesCmd),
}

/// `spore spawn`.
#[derive(Args)]
struct SpawnCmd {
    /// The component to ship and run.
    module: PathBuf,
    /// The entry to start.
    #[arg(default_value = "main")]
    entry: String,
    /// The node to run it on.
    #[arg(long, value_name = "NAME@HOST", value_parser = parse_node_name)]
    on: String,
    /// Arguments for the entry (after `--`).
    #[arg(last = true)]
    args: Vec<String>,
    /// Give the process real clocks.
    #[arg(long)]
    allow_clock: bool,
    /// Memory limit of the process, in MiB (default: the target node's).
    #[arg(long, value_name = "MIB", value_parser = memory_mib())]
    memory_limit: Option<u64>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// `spore node`.
#[derive(Args)]
struct NodeCmd {
    /// The node's name: `name@host` (short, e.g. `ping@localhost`, or a full host name).
    #[arg(long, value_name = "NAME@HOST", value_parser = parse_node_name)]
    name: String,
    /// Spawn a process as the node starts (MODULE.wasm ENTRY; arguments after `--`).
    #[arg(long, num_args = 1..=2, value_names = ["MODULE", "ENTRY"])]
    run: Vec<String>,
    /// Arguments of the --run entry.
    #[arg(last = true)]
    args: Vec<String>,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Connect without joining the mesh or appearing in other nodes' lists (for tools).
    #[arg(long)]
    hidden: bool,
    #[command(flatten)]
    node: NodeArgs,
    #[command(flatten)]
    grants: GrantArgs,
}

/// `spore nodes`.
#[derive(Args)]
struct NodesCmd {
    /// The node to ask.
    #[arg(long, value_name = "NAME@HOST", value_parser = parse_node_name)]
    node: String,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// How a node finds and authenticates its cluster.
#[derive(Args)]
struct ClusterArgs {
    /// The cookie file (default: $HOME/.spore.cookie, created with a random cookie if
    /// missing; it must be readable by its owner only).
    #[arg(long, value_name = "PATH")]
    cookie_file: Option<PathBuf>,
    /// The cookie itself (for scripts; visible to other users in the process list).
    #[arg(long, value_name = "COOKIE", conflicts_with = "cookie_file", value_parser = parse_cookie)]
    cookie: Option<String>,
    /// Interface (and optionally port) to listen on, e.g. 127.0.0.1 or 0.0.0.0:9000.
    #[arg(long, value_name = "IP[:PORT]")]
    listen: Option<String>,
    /// Listen on the first free UDP port in this range (Erlang's inet_dist_listen_min/max).
    #[arg(long, value_name = "MIN-MAX", value_parser = parse_range)]
    port_range: Option<(u16, u16)>,
    /// Seconds of silence after which a peer is down (Erlang's net_ticktime), 0.1 to 86400.
    #[arg(long, value_name = "SECS", default_value = "15", value_parser = parse_tick)]
    tick: std::time::Duration,
    /// TCP port of the port mapper on each host (not 0: nodes find the mapper at a port
    /// they all know).
    #[arg(long, value_name = "PORT", default_value_t = spore_host::mapper::DEFAULT_MAPPER_PORT,
          value_parser = clap::value_parser!(u16).range(1..))]
    mapper_port: u16,
    /// A peer's address, bypassing the port mapper (NAME@HOST=IP:PORT; repeatable).
    #[arg(long = "peer", value_name = "NAME@HOST=IP:PORT", value_parser = parse_peer)]
    peers: Vec<(String, std::net::SocketAddr)>,
    /// KiB each connection may have in flight; raise it for long fat paths (e.g. 16384 for
    /// 1 Gbit/s at 100 ms round trips).
    #[arg(long, value_name = "KIB", default_value_t = spore_host::transport::DEFAULT_SEND_WINDOW >> 10,
          value_parser = clap::value_parser!(u64).range(16..=1 << 20))]
    send_window_kib: u64,
}

/// A memory limit in MiB: from 1 to 1 TiB, so that it cannot wrap around when made bytes
/// (`--memory-limit 17592186044416` used to become a limit of 0).
fn memory_mib() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(1..=1 << 20)
}

/// A `--tick`: seconds within the node's range, 0.1 to 86400 ([`spore_host::dist::TICKS`];
/// `inf` or `1e300` used to panic on the way to a duration).
fn parse_tick(s: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = s.parse().map_err(|_| format!("`{s}` is not a number of seconds"))?;
    let (min, max) =
        (spore_host::dist::TICKS.start().as_secs_f64(), spore_host::dist::TICKS.end().as_secs_f64());
    if !(min..=max).contains(&secs) {
        return Err(format!("{s} seconds is outside {min} to {max}"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s.split_once('-').ok_or_else(|| format!("`{s}` is not MIN-MAX"))?;
    let (a, b): (u16, u16) = (a.parse().map_err(|_| "bad MIN")?, b.parse().map_err(|_| "bad MAX")?);
    if a > b {
        return Err(format!("{a} is above {b}"));
    }
    Ok((a, b))
}

/// A `--cookie`: any text but an empty one (as a cookie file's, it is trimmed).
fn parse_cookie(s: &str) -> Result<String, String> {
    let cookie = s.trim();
    if cookie.is_empty() {
        return Err("the cookie is empty".into());
    }
    Ok(cookie.to_owned())
}

fn parse_peer(s: &str) -> Result<(String, std::net::SocketAddr), String> {
    let (name, addr) = s.split_once('=').ok_or_else(|| format!("`{s}` is not NAME@HOST=IP:PORT"))?;
    Ok((parse_node_name(name)?, addr.parse().map_err(|e| format!("bad address `{addr}`: {e}"))?))
}

/// A node name as peers accept it in a hello: a name no node can have is refused here, with
/// one message, whatever the command would have done with it.
fn parse_node_name(s: &str) -> Result<String, String> {
    if spore_host::proto::valid_node_name(s) {
        Ok(s.to_owned())
    } else {
        Err(format!("`{s}` is not a node name: expected name@host, printable ASCII without spaces"))
    }
}

impl ClusterArgs {
    /// The distribution settings of node `name`.
    fn dist(&self, name: &str, hidden: bool) -> anyhow::Result<DistConfig> {
        let cookie = match (&self.cookie, &self.cookie_file) {
            (Some(c), _) => c.clone(),
            (None, Some(path)) => cookie::load_or_create(path)?,
            (None, None) => cookie::load_or_create(&cookie::default_path()?)?,
        };
        let host = name.split_once('@').map_or("", |(_, h)| h);
        let loopback = host == "localhost" || host.starts_with("127.");
        let default_ip = if loopback { IpAddr::from([127, 0, 0, 1]) } else { IpAddr::from([0, 0, 0, 0]) };
        let mut config = DistConfig::new(cookie);
        config.listen_ip = default_ip;
        if let Some(listen) = &self.listen {
            if let Ok(addr) = listen.parse::<std::net::SocketAddr>() {
                config.listen_ip = addr.ip();
                config.ports = (addr.port(), addr.port());
            } else {
                config.listen_ip = listen.parse().with_context(|| format!("bad --listen `{listen}`"))?;
            }
        }
        if let Some(range) = self.port_range {
            config.ports = range;
        }
        config.tick = self.tick;
        config.hidden = hidden;
        config.mapper_port = Some(self.mapper_port);
        config.addresses = self.peers.iter().cloned().collect();
        config.send_window = self.send_window_kib << 10;
        Ok(config)
    }
}

#[derive(Args)]
struct RunArgs {
    /// The component to run (built for wasm32-wasip2 against the spore:process world).
    module: PathBuf,
    /// The entry to start.
    #[arg(default_value = "main")]
    entry: String,
    /// Arguments for the entry (after `--`), parsed by the guest into the entry's types.
    #[arg(last = true)]
    args: Vec<String>,
    #[command(flatten)]
    node: NodeArgs,
    #[command(flatten)]
    grants: GrantArgs,
    /// Make the throwaway node a named node of a cluster (`name@host`), so that the process
    /// can talk to and spawn on other nodes.
    #[arg(long, value_name = "NAME@HOST", value_parser = parse_node_name)]
    name: Option<String>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Settings of the local node.
#[derive(Args)]
struct NodeArgs {
    /// Default memory limit of a process, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 64, value_parser = memory_mib())]
    memory_limit: u64,
    /// Count fuel and give the first process this budget (roughly wasm instructions).
    #[arg(long, value_name = "UNITS")]
    fuel: Option<u64>,
    /// Processes alive at once.
    #[arg(long, value_name = "N", default_value_t = spore_host::config::DEFAULT_MAX_PROCESSES)]
    max_processes: u32,
    /// Compile without the on-disk cache of compiled modules.
    #[arg(long)]
    no_cache: bool,
    /// Instantiate linear memories from copy-on-write images (faster for modules with large
    /// data segments; slower for small guests).
    #[arg(long)]
    copy_on_write: bool,
    /// The compiler of modules: cranelift (fast code) or winch (fast compiles, slower code).
    #[arg(long, value_enum, default_value_t = CompilerArg::Cranelift)]
    compiler: CompilerArg,
    /// How long an idle worker thread spins, watching the socket, before it sleeps: lower
    /// latency for some CPU (0: never spin; at most 10000).
    #[arg(long, value_name = "US", default_value_t = spore_host::config::DEFAULT_BUSY_WAIT.as_micros() as u64)]
    busy_wait_us: u64,
}

/// `--compiler`: [`Compiler`] on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CompilerArg {
    /// Cranelift, the optimizing compiler.
    Cranelift,
    /// Winch, the baseline compiler.
    Winch,
}

/// Capabilities granted to the first process (and passed on only where it asks).
#[derive(Args)]
struct GrantArgs {
    /// Give real clocks (otherwise they read zero).
    #[arg(long)]
    allow_clock: bool,
    /// Set an environment variable (KEY=VALUE; repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Preopen a directory read-only: HOST, or HOST:GUEST to show it at GUEST (repeatable).
    #[arg(long = "dir", value_name = "HOST[:GUEST]", value_parser = parse_dir)]
    dirs: Vec<String>,
    /// Preopen a directory read-write: HOST, or HOST:GUEST to show it at GUEST (repeatable).
    #[arg(long = "dir-rw", value_name = "HOST[:GUEST]", value_parser = parse_dir)]
    dirs_rw: Vec<String>,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    if k.is_empty() {
        return Err(format!("`{s}` has no KEY"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// A `--dir`/`--dir-rw`: its HOST part must be a directory (a missing one used to be
/// accepted, and the process found nothing there, with a warning only at its first file
/// access).
fn parse_dir(s: &str) -> Result<String, String> {
    let host = s.split_once(':').map_or(s, |(host, _)| host);
    match std::fs::metadata(host) {
        Ok(meta) if meta.is_dir() => Ok(s.to_owned()),
        Ok(_) => Err(format!("{host} is not a directory")),
        Err(e) => Err(format!("cannot open {host}: {e}")),
    }
}

impl GrantArgs {
    fn grants(&self) -> Grants {
        let preopen = |spec: &String, writable| {
            let (host, guest) = spec.split_once(':').unwrap_or((spec, spec));
            Preopen { host: host.into(), guest: guest.to_owned(), writable }
        };
        Grants {
            clock: self.allow_clock,
            env: self.env.clone(),
            dirs: self
                .dirs
                .iter()
                .map(|d| preopen(d, false))
                .chain(self.dirs_rw.iter().map(|d| preopen(d, true)))
                .collect(),
        }
    }
}

impl NodeArgs {
    fn config(&self) -> NodeConfig {
        let mut config = NodeConfig {
            max_processes: self.max_processes,
            fuel: self.fuel.is_some(),
            copy_on_write: self.copy_on_write,
            busy_wait: std::time::Duration::from_micros(self.busy_wait_us),
            compiler: match self.compiler {
                CompilerArg::Cranelift => Compiler::Cranelift,
                CompilerArg::Winch => Compiler::Winch,
            },
            ..NodeConfig::default()
        };
        config.limits.memory_bytes = self.memory_limit << 20;
        if self.no_cache {
            config.cache_dir = CacheDir::Disabled;
        }
        config
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SPORE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only: escape codes in a log file or a pipe are noise.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none(),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("spore: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => {
                let mut config = args.node.config();
                let bytes = read_module(&args.module, config.max_module_bytes)?;
                if let Some(name) = &args.name {
                    config.name = name.clone();
                    config.dist = Some(args.cluster.dist(name, false)?);
                }
                run(config, args.node.fuel, bytes, &args.entry, &args.args, args.grants.grants()).await
            }
            Command::Demo(node) => demo(&node).await,
            Command::Node(cmd) => node(cmd).await,
            Command::Nodes(cmd) => nodes(cmd).await,
            Command::Spawn(cmd) => spawn(cmd).await,
            Command::Ps(cmd) => ps(cmd).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("spore: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs `entry` on a throwaway node until every process of its group has ended.
async fn run(
    config: NodeConfig,
    fuel: Option<u64>,
    bytes: Vec<u8>,
    entry: &str,
    args: &[String],
    grants: Grants,
) -> anyhow::Result<ExitCode> {
    let node = Node::start(config)?;
    let module = node.load(bytes).await.context("cannot load the module")?;
    let mut group = node.group_leader();
    let mut request = SpawnRequest::new(module, entry).args(demo::text_args(args)).group_leader(group.pid());
    request.grants = grants;
    request.fuel = fuel;
    let pid = node.spawn(request)?;
    let reason = group.print_until_done(pid, &mut std::io::stdout(), &mut std::io::stderr()).await;
    drop(group);
    node.shutdown();
    Ok(match reason {
        ExitReason::Normal => ExitCode::SUCCESS,
        reason => {
            eprintln!("spore: {entry} ({pid}) exited: {reason}");
            ExitCode::FAILURE
        }
    })
}

/// Runs a named node until Ctrl-C (or SIGTERM), printing the output of its --run process.
async fn node(cmd: NodeCmd) -> anyhow::Result<ExitCode> {
    // Read before the node starts: a missing file is an error before any "listening" line.
    let mut config = cmd.node.config();
    let run = match cmd.run.first() {
        Some(module) => Some(read_module(module.as_ref(), config.max_module_bytes)?),
        None => None,
    };
    config.name = cmd.name.clone();
    config.dist = Some(cmd.cluster.dist(&cmd.name, cmd.hidden)?);
    let node = Node::start(config)?;
    let mut group = node.group_leader();
    if let Some(bytes) = run {
        let entry = cmd.run.get(1).map_or("main", String::as_str);
        let id = node.load(bytes).await.context("cannot load the module")?;
        let mut request =
            SpawnRequest::new(id, entry).args(demo::text_args(&cmd.args)).group_leader(group.pid());
        request.grants = cmd.grants.grants();
        node.spawn(request)?;
    }
    // Once `--run`'s module and entry have been found good: an error comes alone.
    let addr = node.local_addr().map(|a| a.to_string()).unwrap_or_default();
    eprintln!("spore: node {} listening on {addr} (Ctrl-C to stop)", node.name());
    let print = async {
        let mut out = std::io::stdout();
        let mut err = std::io::stderr();
        loop {
            group.print_until_done(group.pid(), &mut out, &mut err).await;
            // The group may grow again (processes spawned later by others); keep printing.
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = print => {}
        () = shutdown_signal() => {}
    }
    eprintln!("spore: node {} shutting down", node.name());
    drop(group);
    node.shutdown();
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending().await,
            }
        } => {}
    }
}

/// A hidden tool node's name, unique on this host: on the target's host part when that is
/// loopback, else on this machine's host name.
fn tool_name(kind: &str, target: &str) -> String {
    let host = target.split_once('@').map_or("localhost", |(_, h)| h);
    let host = if host == "localhost" || host.starts_with("127.") {
        host.to_owned()
    } else {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map_or_else(|_| host.to_owned(), |h| h.trim().to_owned())
    };
    format!("{kind}-{}@{host}", std::process::id())
}

/// A hidden node for a tool talking to `target`.
fn tool_node(kind: &str, target: &str, cluster: &ClusterArgs) -> anyhow::Result<Node> {
    let name = tool_name(kind, target);
    let config = NodeConfig {
        name: name.clone(),
        max_processes: 16,
        dist: Some(cluster.dist(&name, true)?),
        ..NodeConfig::default()
    };
    Ok(Node::start(config)?)
}

/// The module file at `path`, refused unread if over `max` bytes.
fn read_module(path: &std::path::Path, max: u64) -> anyhow::Result<Vec<u8>> {
    spore_host::cache::read_module(path, max).map_err(|e| match e {
        // "cannot read PATH: ..." says it all.
        LoadError::Read { .. } => e.into(),
        other => anyhow::Error::from(other).context(format!("cannot load {}", path.display())),
    })
}

/// How long `spore spawn` waits, after Ctrl-C, for its processes' ends to come home.
const KILL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// `spore spawn`: ships the module, runs it on the target, prints the group's output here.
async fn spawn(cmd: SpawnCmd) -> anyhow::Result<ExitCode> {
    // The target's limit is not known here: every node takes the default unless its
    // embedder set another.
    let bytes = read_module(&cmd.module, spore_host::config::DEFAULT_MODULE_BYTES)?;
    let node = tool_node("spawn", &cmd.on, &cmd.cluster)?;
    let mut group = node.group_leader();
    let mut request = SpawnRequest::from_bytes(bytes, cmd.entry.clone()).args(demo::text_args(&cmd.args));
    request.grants.clock = cmd.allow_clock;
    request.memory_limit = cmd.memory_limit.map(|m| m << 20);
    let pid = group.process().spawn_on(&cmd.on, request).await?;
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let reason = tokio::select! {
        reason = group.print_until_done(pid, &mut out, &mut err) => reason,
        () = shutdown_signal() => {
            // Until their ends come home: the kills must reach the members' nodes before
            // this node shuts down, and a member must not be said killed while it runs.
            let left = tokio::select! {
                left = group.kill_all(&mut out, &mut err, KILL_WAIT) => left,
                () = shutdown_signal() => group.members(),
            };
            if !left.is_empty() {
                let left: Vec<String> = left.iter().map(Pid::to_string).collect();
                eprintln!("spore: not confirmed killed (their node did not answer): {}", left.join(", "));
            }
            ExitReason::Killed
        }
    };
    drop(group);
    node.shutdown();
    Ok(match reason {
        ExitReason::Normal => ExitCode::SUCCESS,
        reason => {
            eprintln!("spore: {} ({pid}) on {} exited: {reason}", cmd.entry, cmd.on);
            ExitCode::FAILURE
        }
    })
}

/// `spore ps`: the processes of a node.
async fn ps(cmd: NodesCmd) -> anyhow::Result<ExitCode> {
    let node = tool_node("ps", &cmd.node, &cmd.cluster)?;
    let reply = node.query(&cmd.node, Query::Processes).await;
    node.shutdown();
    let QueryReply::Processes(mut rows) = reply? else {
        anyhow::bail!("unexpected answer from {}", cmd.node);
    };
    rows.sort_by_key(|r| r.pid.index);
    println!(
        "{:<14} {:<12} {:<14} {:<14} {:>10} {:>8}  STATUS",
        "PID", "NAME", "MODULE", "ENTRY", "MEMORY", "MAILBOX"
    );
    for r in rows {
        let (module, entry) =
            r.module.map_or(("(host)".to_owned(), String::new()), |(m, e)| (m[..12].to_owned(), e));
        println!(
            "{:<14} {:<12} {:<14} {:<14} {:>10} {:>8}  {}",
            r.pid.to_string(),
            r.name.unwrap_or_default(),
            module,
            entry,
            r.memory,
            r.mailbox_len,
            r.status
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the cluster as `cmd.node` sees it: that node, then the nodes it is connected to.
async fn nodes(cmd: NodesCmd) -> anyhow::Result<ExitCode> {
    let node = tool_node("nodes", &cmd.node, &cmd.cluster)?;
    let reply = node.query(&cmd.node, Query::Nodes).await;
    node.shutdown();
    match reply? {
        QueryReply::Nodes(names) => {
            println!("{}", cmd.node);
            for n in names {
                println!("{n}");
            }
            Ok(ExitCode::SUCCESS)
        }
        other => anyhow::bail!("unexpected answer from {}: {other:?}", cmd.node),
    }
}

/// `spore demo`: tut22 between this process and a second `spore node` process.
async fn demo(node_args: &NodeArgs) -> anyhow::Result<ExitCode> {
    let cookie = cookie::generate()?;
    let mapper = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let exe = std::env::current_exe().context("cannot find the spore executable")?;
    let mut ping = std::process::Command::new(exe)
        .args(["node", "--name", "ping@localhost", "--cookie", &cookie, "--mapper-port", &mapper.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("cannot start the ping node")?;
    let result = async {
        let mut config = node_args.config();
        config.name = "pong@localhost".into();
        let mut dist = DistConfig::new(cookie.clone());
        dist.mapper_port = Some(mapper);
        config.dist = Some(dist);
        let node = Node::start(config)?;
        eprintln!("spore demo: this process is pong@localhost; ping@localhost is process {}", ping.id());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while let Err(e) = node.connect("ping@localhost").await {
            anyhow::ensure!(std::time::Instant::now() < deadline, "the ping node did not come up: {e}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let module = node.load(demo::PING_PONG_WASM.to_vec()).await?;
        let mut group = node.group_leader();
        let request = SpawnRequest::new(module, "start")
            .args(demo::text_args(&["ping@localhost"]))
            .group_leader(group.pid());
        let pid = node.spawn(request)?;
        let reason = group.print_until_done(pid, &mut std::io::stdout(), &mut std::io::stderr()).await;
        drop(group);
        node.shutdown();
        Ok::<_, anyhow::Error>(reason)
    }
    .await;
    let _ = ping.kill();
    let _ = ping.wait();
    Ok(match result? {
        ExitReason::Normal => ExitCode::SUCCESS,
        reason => {
            eprintln!("spore demo: start exited: {reason}");
            ExitCode::FAILURE
        }
    })
}
