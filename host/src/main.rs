//! `spore`: the command-line interface to Spore nodes. Parses arguments and calls the
//! `spore_host` library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use spore_host::{CacheDir, ExitReason, Grants, Node, NodeConfig, Preopen, SpawnRequest, demo};

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
    /// Run the built-in demo: the Erlang tutorial's ping-pong.
    Demo(NodeArgs),
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
}

/// Settings of the local node.
#[derive(Args)]
struct NodeArgs {
    /// Default memory limit of a process, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
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
    /// Preopen a directory read-only (HOST[:GUEST]; repeatable).
    #[arg(long = "dir", value_name = "HOST[:GUEST]")]
    dirs: Vec<String>,
    /// Preopen a directory read-write (HOST[:GUEST]; repeatable).
    #[arg(long = "dir-rw", value_name = "HOST[:GUEST]")]
    dirs_rw: Vec<String>,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    Ok((k.to_owned(), v.to_owned()))
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
                let bytes = std::fs::read(&args.module)
                    .with_context(|| format!("cannot read {}", args.module.display()))?;
                run(&args.node, bytes, &args.entry, &args.args, args.grants.grants()).await
            }
            Command::Demo(node) => {
                run(&node, demo::PING_PONG_WASM.to_vec(), "main", &[], Grants::default()).await
            }
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
    node_args: &NodeArgs,
    bytes: Vec<u8>,
    entry: &str,
    args: &[String],
    grants: Grants,
) -> anyhow::Result<ExitCode> {
    let node = Node::start(node_args.config())?;
    let module = node.load(bytes).await.context("cannot load the module")?;
    let mut group = node.group_leader();
    let mut request = SpawnRequest::new(module, entry).args(demo::text_args(args)).group_leader(group.pid());
    request.grants = grants;
    request.fuel = node_args.fuel;
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
