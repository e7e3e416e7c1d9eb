//! The harness of Spore's integration tests: the test guests' paths, nodes with small
//! pools, and helpers that wait on events with deadlines (no test sleeps to wait).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use ciborium::Value;
use spore_host::{
    CacheDir, DistConfig, ExitReason, HostProcess, Incoming, ModuleId, Node, NodeConfig, Pid, Ref, Selector,
    SpawnRequest, cbor,
};

/// Paths of the guests built by build.rs.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// How long a test waits for an event that should come at once.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A node configuration for tests: a small instance pool (several nodes share one test
/// process's address space, TECH-NOTES pitfall 7) and a shared compiled-module cache.
pub fn test_config(name: &str) -> NodeConfig {
    NodeConfig {
        name: name.to_owned(),
        max_processes: 64,
        cache_dir: CacheDir::Path(cache_dir()),
        ..NodeConfig::default()
    }
}

/// The compiled-module cache shared by the tests of one checkout.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(concat!(env!("OUT_DIR"), "/spore-cache"))
}

/// Starts a node with [`test_config`].
pub fn node(name: &str) -> Node {
    Node::start(test_config(name)).expect("start node")
}

/// Loads a guest file.
pub async fn load(node: &Node, path: &str) -> anyhow::Result<ModuleId> {
    node.load_file(path).await.with_context(|| format!("loading {path}"))
}

/// Spawns `entry` of `module` with CBOR `args` (an array), output to the node's stdout.
pub fn spawn(node: &Node, module: ModuleId, entry: &str, args: Vec<Value>) -> anyhow::Result<Pid> {
    let request = SpawnRequest::new(module, entry).args(cbor::to_bytes(&Value::Array(args)));
    Ok(node.spawn(request)?)
}

/// `component` with a custom section `name` holding `payload` appended (section id 0,
/// LEB128 size, LEB128-prefixed name, payload): the same program with another SHA-256.
pub fn with_custom_section(component: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut content = Vec::new();
    leb128(name.len(), &mut content);
    content.extend_from_slice(name.as_bytes());
    content.extend_from_slice(payload);
    let mut out = component.to_vec();
    out.push(0);
    leb128(content.len(), &mut out);
    out.extend_from_slice(&content);
    out
}

/// Text as a CBOR value.
pub fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

/// An integer as a CBOR value.
pub fn int(n: u64) -> Value {
    Value::Integer(n.into())
}

/// Waits for the next ordinary message and decodes its payload.
pub async fn next_message(me: &mut HostProcess) -> anyhow::Result<(Pid, Value)> {
    match me.receive(&[], Some(DEADLINE)).await {
        Some(Incoming::Message(m)) => {
            let value = cbor::from_bytes(&m.payload).context("payload is not CBOR")?;
            Ok((m.sender, value))
        }
        Some(other) => bail!("expected a message, got {other:?}"),
        None => bail!("no message within {DEADLINE:?}"),
    }
}

/// Waits for the next signal (exit or down).
pub async fn next_signal(me: &mut HostProcess) -> anyhow::Result<Incoming> {
    me.receive(&[Selector::Signals], Some(DEADLINE))
        .await
        .with_context(|| format!("no signal within {DEADLINE:?}"))
}

/// Waits for the down notice of `monitor` (the next signal must be it); returns its reason.
pub async fn next_down(me: &mut HostProcess, monitor: Ref) -> anyhow::Result<ExitReason> {
    match next_signal(me).await? {
        Incoming::Down { monitor: m, reason, .. } if m == monitor => Ok(reason),
        other => bail!("expected the down notice of monitor {monitor}, got {other:?}"),
    }
}

/// The text inside a CBOR value.
pub fn as_text(v: &Value) -> anyhow::Result<&str> {
    v.as_text().with_context(|| format!("expected text, got {v:?}"))
}

/// A free TCP port on loopback (for a test's private port mapper).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// The liveness tick of test clusters: short, so that lost nodes are noticed quickly.
pub const TICK: Duration = Duration::from_millis(1500);

/// The claim a hand-driven dialer `node` (incarnation 1) binds its transport with.
pub fn claim(node: &str) -> spore_host::transport::tls::Claim {
    spore_host::transport::tls::Claim { node: spore_host::NodeId::of(node), incarnation: 1 }
}

/// A distributed node for tests: loopback, a private mapper on `mapper_port`, `cookie`.
pub fn dist_node(name: &str, cookie: &str, mapper_port: u16) -> Node {
    dist_node_ticking(name, cookie, mapper_port, TICK)
}

/// [`dist_node`] with the liveness tick `tick`.
fn dist_node_ticking(name: &str, cookie: &str, mapper_port: u16, tick: Duration) -> Node {
    let mut dist = DistConfig::new(cookie);
    dist.mapper_port = Some(mapper_port);
    dist.tick = tick;
    // No disk cache: each node must receive the modules it runs, so shipping can be counted.
    let config = NodeConfig { dist: Some(dist), cache_dir: CacheDir::Disabled, ..test_config(name) };
    Node::start(config).expect("start distributed node")
}

/// `n` nodes named `<prefix><i>@localhost` sharing a cookie and a private mapper.
pub fn cluster(prefix: &str, n: usize) -> Vec<Node> {
    cluster_ticking(prefix, n, TICK)
}

/// [`cluster`] with the liveness tick `tick`: for a test about something else than liveness
/// that loads the CPUs for long, where the short [`TICK`] would end its connections when a
/// concurrent test saturates both cores (debug builds, spinning guests).
pub fn cluster_ticking(prefix: &str, n: usize, tick: Duration) -> Vec<Node> {
    let mapper = free_port();
    (0..n)
        .map(|i| dist_node_ticking(&format!("{prefix}{i}@localhost"), "test-cookie", mapper, tick))
        .collect()
}

/// Waits for a node event about `name` (up or down) at `me`.
pub async fn next_node_event(
    me: &mut HostProcess,
    deadline: Duration,
) -> anyhow::Result<(String, bool, String)> {
    match me.receive(&[Selector::Signals], Some(deadline)).await {
        Some(Incoming::Node { name, up, reason }) => Ok((name, up, reason)),
        Some(other) => bail!("expected a node event, got {other:?}"),
        None => bail!("no node event within {deadline:?}"),
    }
}
