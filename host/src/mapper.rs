//! The port mapper, Spore's epmd: on each host, a well-known TCP port where nodes register
//! `name -> UDP port`, and where others ask for a node's port.
//!
//! There is no separate daemon: every node runs a [`Mapper`] task that keeps a registration
//! open with the host's mapper, and the first node that finds no mapper serves it itself.
//! When that node ends, another takes over and the others register again. A registration
//! lives as long as its TCP connection, so a killed node's name disappears at once.
//!
//! The protocol is lines of text: `REGISTER name port` → `OK` | `TAKEN`;
//! `LOOKUP name` → `PORT n` | `NONE`; `NAMES` → `NAMES name=port ...`.
//!
//! A node looks up the other nodes of its own host through what it already holds
//! ([`Mapper::lookup_here`]): the table, when it serves the mapper, or its registration's
//! connection, which takes requests too. A lookup then costs no TCP connection of its own.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// The mapper's default port (Erlang's epmd uses 4369).
pub const DEFAULT_MAPPER_PORT: u16 = 4370;
/// Longest request or answer line.
const MAX_LINE_BYTES: usize = 512;
/// How long a lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before registering again after losing the mapper.
const RETRY: Duration = Duration::from_millis(50);

/// Why a node could not be found through the mapper.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The host part does not resolve.
    #[error("cannot resolve host {0}")]
    Host(String),
    /// No mapper answers on that host.
    #[error("no port mapper on {host}:{port} ({reason}); is a node running there?")]
    NoMapper {
        /// The host.
        host: String,
        /// The mapper port.
        port: u16,
        /// The connection error.
        reason: String,
    },
    /// The mapper does not know the name.
    #[error("no node called {0} is registered with the port mapper on its host")]
    Unknown(String),
    /// The mapper answered nonsense or too slowly.
    #[error("port mapper on {0} answered badly")]
    Protocol(String),
}

/// Finds the UDP address of node `name` (`short@host`) through the mapper on its host.
pub async fn lookup(name: &str, mapper_port: u16) -> Result<SocketAddr, LookupError> {
    let (short, host) = name.split_once('@').ok_or_else(|| LookupError::Host(name.to_owned()))?;
    let mut addrs: Vec<SocketAddr> = if host.eq_ignore_ascii_case("localhost") {
        // Loopback by definition (RFC 6761), so no resolver: the system's runs on a blocking
        // thread and reads /etc/hosts, 0.1-0.4 ms of a first connect.
        vec![
            SocketAddr::from((Ipv4Addr::LOCALHOST, mapper_port)),
            SocketAddr::from((Ipv6Addr::LOCALHOST, mapper_port)),
        ]
    } else {
        tokio::net::lookup_host((host, mapper_port))
            .await
            .map_err(|_| LookupError::Host(host.to_owned()))?
            .collect()
    };
    // IPv4 first: mappers of loopback nodes listen on 127.0.0.1.
    addrs.sort_by_key(|a| !a.is_ipv4());
    let mut last = String::from("no address");
    for addr in addrs {
        match tokio::time::timeout(LOOKUP_TIMEOUT, ask(addr, &format!("LOOKUP {short}"))).await {
            Ok(Ok(answer)) => {
                return match parse_port(&answer) {
                    Some(Some(port)) => Ok(SocketAddr::new(addr.ip(), port)),
                    Some(None) => Err(LookupError::Unknown(name.to_owned())),
                    None => Err(LookupError::Protocol(host.to_owned())),
                };
            }
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "timed out".to_owned(),
        }
    }
    Err(LookupError::NoMapper { host: host.to_owned(), port: mapper_port, reason: last })
}

async fn ask(addr: SocketAddr, request: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(format!("{request}\n").as_bytes()).await?;
    let mut reader = BufReader::new(stream).take(MAX_LINE_BYTES as u64);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    Ok(line.trim().to_owned())
}

/// Keeps this node registered with its host's mapper, serving the mapper when none runs.
pub struct Mapper {
    task: tokio::task::JoinHandle<()>,
    here: Arc<Here>,
}

/// What a node holds of its host's mapper, for its own lookups.
#[derive(Default)]
struct Here {
    /// Whether the mapper is the one on 127.0.0.1, where [`lookup`] asks for `…@localhost`.
    loopback: bool,
    /// The table, while this node serves the mapper.
    table: Mutex<Option<Table>>,
    /// The registration with another node's mapper, while it is up.
    registration: tokio::sync::Mutex<Option<Registration>>,
}

/// A registration's connection, used for lookups too.
struct Registration {
    write: OwnedWriteHalf,
    /// Lookups sent and not yet answered, in the order sent (answers come in that order).
    waiting: Arc<Mutex<VecDeque<oneshot::Sender<String>>>>,
}

impl Mapper {
    /// Starts registering `short` → `udp_port` with the mapper on `ip:mapper_port`, on the
    /// current runtime. `registered` fires once the name is first registered.
    pub fn start(
        ip: IpAddr,
        mapper_port: u16,
        short: String,
        udp_port: u16,
        registered: std::sync::mpsc::Sender<()>,
    ) -> Self {
        let loopback = ip.is_unspecified() || ip == IpAddr::V4(Ipv4Addr::LOCALHOST);
        let here = Arc::new(Here { loopback, ..Here::default() });
        let task = tokio::spawn({
            let here = Arc::clone(&here);
            async move {
                loop {
                    if let Err(e) =
                        keep_registered(ip, mapper_port, &short, udp_port, &registered, &here).await
                    {
                        tracing::debug!("port mapper: {e}");
                    }
                    tokio::time::sleep(RETRY).await;
                }
            }
        });
        Self { task, here }
    }

    /// The address of node `name` if it runs on this host under `localhost`, from the
    /// table this node serves or through its registration: `Some(Err(Unknown))` if the
    /// mapper does not know it, `None` if this cannot tell (another host, no registration
    /// up): ask [`lookup`] then.
    pub async fn lookup_here(&self, name: &str) -> Option<Result<SocketAddr, LookupError>> {
        let (short, host) = name.split_once('@')?;
        // One word: anything else would not be one request on the shared connection.
        if !self.here.loopback || !host.eq_ignore_ascii_case("localhost") || !is_word(short) {
            return None;
        }
        let table = self.here.table.lock().clone();
        let port = match table {
            Some(table) => table.lock().get(short).copied(),
            None => parse_port(&self.ask_registered(short).await?)?,
        };
        let addr = port.map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        Some(addr.ok_or_else(|| LookupError::Unknown(name.to_owned())))
    }

    /// Sends `LOOKUP short` on the registration's connection and waits for the answer.
    async fn ask_registered(&self, short: &str) -> Option<String> {
        let answer = {
            let mut registration = self.here.registration.lock().await;
            let registration = registration.as_mut()?;
            let (tx, rx) = oneshot::channel();
            registration.waiting.lock().push_back(tx);
            registration.write.write_all(format!("LOOKUP {short}\n").as_bytes()).await.ok()?;
            rx
        };
        tokio::time::timeout(LOOKUP_TIMEOUT, answer).await.ok()?.ok()
    }
}

impl Drop for Mapper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether `s` is a non-empty word without whitespace.
fn is_word(s: &str) -> bool {
    !s.is_empty() && !s.contains(char::is_whitespace)
}

/// A `LOOKUP` answer: `Some(Some(port))`, `Some(None)` for `NONE`, `None` if malformed.
fn parse_port(answer: &str) -> Option<Option<u16>> {
    match answer.strip_prefix("PORT ") {
        Some(port) => port.parse().ok().map(Some),
        None => (answer == "NONE").then_some(None),
    }
}

/// One round: serve the mapper if the port is free, else register with the one there and
/// hold the registration until that mapper goes away.
async fn keep_registered(
    ip: IpAddr,
    mapper_port: u16,
    short: &str,
    udp_port: u16,
    registered: &std::sync::mpsc::Sender<()>,
    here: &Here,
) -> std::io::Result<()> {
    if let Ok(listener) = TcpListener::bind(SocketAddr::new(ip, mapper_port)).await {
        tracing::debug!(%ip, mapper_port, "serving the port mapper");
        let table = Arc::new(Mutex::new(HashMap::from([(short.to_owned(), udp_port)])));
        *here.table.lock() = Some(Arc::clone(&table));
        let _ = registered.send(());
        let served = serve(listener, table).await;
        *here.table.lock() = None;
        return served;
    }
    let connect_ip = if ip.is_unspecified() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { ip };
    let stream = TcpStream::connect(SocketAddr::new(connect_ip, mapper_port)).await?;
    let (read, mut write) = stream.into_split();
    write.write_all(format!("REGISTER {short} {udp_port}\n").as_bytes()).await?;
    let mut lines = BufReader::new(read);
    let mut line = String::new();
    lines.read_line(&mut line).await?;
    if line.trim() != "OK" {
        tracing::warn!(name = short, "the port mapper refused the registration: {}", line.trim());
        // Held until the mapper closes the connection.
        line.clear();
        while lines.read_line(&mut line).await? > 0 {
            line.clear();
        }
        return Ok(());
    }
    let waiting = Arc::new(Mutex::new(VecDeque::new()));
    *here.registration.lock().await = Some(Registration { write, waiting: Arc::clone(&waiting) });
    let _ = registered.send(());
    // Held until the mapper closes the connection; what comes meanwhile answers lookups.
    let held = async {
        loop {
            line.clear();
            if (&mut lines).take(MAX_LINE_BYTES as u64).read_line(&mut line).await? == 0 {
                return Ok(());
            }
            if let Some(lookup) = waiting.lock().pop_front() {
                let _ = lookup.send(line.trim().to_owned());
            }
        }
    };
    let result: std::io::Result<()> = held.await;
    *here.registration.lock().await = None;
    // Lookups still waiting see their answer channel close.
    waiting.lock().clear();
    result
}

type Table = Arc<Mutex<HashMap<String, u16>>>;

async fn serve(listener: TcpListener, table: Table) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(client(stream, Arc::clone(&table)));
    }
}

/// One connection to the mapper: requests, and the registration it holds.
async fn client(stream: TcpStream, table: Table) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut registered: Option<String> = None;
    let mut line = String::new();
    loop {
        line.clear();
        match (&mut reader).take(MAX_LINE_BYTES as u64).read_line(&mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let mut words = line.split_whitespace();
        let answer = match (words.next(), words.next(), words.next()) {
            (Some("REGISTER"), Some(name), Some(port)) if registered.is_none() => match port.parse::<u16>() {
                Ok(port) => {
                    let mut t = table.lock();
                    if t.contains_key(name) {
                        "TAKEN".to_owned()
                    } else {
                        t.insert(name.to_owned(), port);
                        registered = Some(name.to_owned());
                        "OK".to_owned()
                    }
                }
                Err(_) => "ERROR bad port".to_owned(),
            },
            (Some("LOOKUP"), Some(name), None) => {
                table.lock().get(name).map_or_else(|| "NONE".to_owned(), |p| format!("PORT {p}"))
            }
            (Some("NAMES"), None, None) => {
                let t = table.lock();
                let names: Vec<String> = t.iter().map(|(n, p)| format!("{n}={p}")).collect();
                format!("NAMES {}", names.join(" "))
            }
            _ => "ERROR bad request".to_owned(),
        };
        if write.write_all(format!("{answer}\n").as_bytes()).await.is_err() {
            break;
        }
    }
    if let Some(name) = registered {
        table.lock().remove(&name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits, within a deadline, until a mapper task reports its registration.
    async fn registered(rx: std::sync::mpsc::Receiver<()>) -> std::sync::mpsc::Receiver<()> {
        tokio::task::spawn_blocking(move || {
            rx.recv_timeout(Duration::from_secs(10)).expect("registered with the mapper");
            rx
        })
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nodes_of_this_host_are_found_through_what_a_node_holds() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let (tx, rx) = std::sync::mpsc::channel();
        let serving = Mapper::start(localhost, port, "a".into(), 1111, tx.clone());
        let rx = registered(rx).await;
        let registering = Mapper::start(localhost, port, "b".into(), 2222, tx);
        registered(rx).await;
        let addr = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        // From the table the serving node holds, and over the other's registration.
        assert_eq!(serving.lookup_here("b@localhost").await.unwrap().unwrap(), addr(2222));
        assert_eq!(registering.lookup_here("a@localhost").await.unwrap().unwrap(), addr(1111));
        assert_eq!(registering.lookup_here("b@LOCALHOST").await.unwrap().unwrap(), addr(2222));
        assert!(matches!(registering.lookup_here("c@localhost").await, Some(Err(LookupError::Unknown(_)))));
        // The same answers through a connection of its own.
        assert_eq!(lookup("a@localhost", port).await.unwrap(), addr(1111));
        // Not this host's, or not one request: the caller asks the host's mapper itself.
        assert!(registering.lookup_here("a@elsewhere").await.is_none());
        assert!(registering.lookup_here("a\nNAMES@localhost").await.is_none());
        assert!(registering.lookup_here("@localhost").await.is_none());
    }
}
