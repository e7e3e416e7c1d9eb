//! The port mapper, Spore's epmd: on each host, a well-known TCP port where nodes register
//! `name -> UDP port`, and where others ask for a node's port.
//!
//! There is no separate daemon: every node runs a [`Mapper`] task that keeps a registration
//! open with the host's mapper, and the first node that finds no mapper serves it itself.
//! When that node ends, another takes over and the others register again. A registration
//! lives as long as its TCP connection, so a killed node's name disappears at once.
//!
//! The protocol is lines of text: `REGISTER name port` → `OK` | `TAKEN`;
//! `LOOKUP name` → `PORT n` | `NONE`; `NAMES` → `NAMES name=port ...`. A connection that
//! holds a registration also gets the table after its `OK`, as one `UP name port` line per
//! name, then each change as it happens: `UP name port`, `DOWN name`. A connection that
//! leaves [`QUEUED_LINES`] of these and its answers unread is closed, and its registration
//! with it: the mapper's memory does not grow for a client that does not read.
//!
//! A node looks up the other nodes of its own host through what it already holds
//! ([`Mapper::lookup_here`]): the table, when it serves the mapper, or its copy of it, kept
//! by those lines. A lookup then costs no round trip; a name its copy lacks (a node that
//! registered a moment ago) is asked for on the registration's connection.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// The mapper's default port (Erlang's epmd uses 4369).
pub const DEFAULT_MAPPER_PORT: u16 = 4370;
/// Longest request or answer line.
const MAX_LINE_BYTES: usize = 512;
/// How long a lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before registering again after losing the mapper.
const RETRY: Duration = Duration::from_millis(50);
/// Refusals (`TAKEN`, [`RETRY`] apart) before a starting node is told that its name is
/// taken. A node that stopped a moment ago may hold the name until the mapper has seen its
/// connection close, so a node restarted at once under the same name asks a few times.
const TAKEN_TRIES: u32 = 6;
/// Most lines the mapper queues for one connection that does not read them (answers to
/// requests it keeps sending, the table's changes): past it, the connection is closed, its
/// registration with it, instead of the queue growing without bound.
const QUEUED_LINES: usize = 4096;
/// How long the mapper keeps writing its last answers to a connection whose client has
/// stopped sending: one that never reads them would otherwise hold a task and its socket
/// forever.
const FLUSH_PATIENCE: Duration = Duration::from_secs(5);

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
    /// Until [`Mapper::stop`].
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
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
    /// The registered names and ports, as that mapper last told, while registered there.
    copy: Mutex<HashMap<String, u16>>,
}

/// A registration's connection, used for lookups too.
struct Registration {
    write: OwnedWriteHalf,
    /// Lookups sent and not yet answered, in the order sent (answers come in that order).
    waiting: Arc<Mutex<VecDeque<oneshot::Sender<String>>>>,
}

/// How a node's first registration with its host's mapper went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstRegistration {
    /// The name is registered (or this node serves the mapper, with its name in it).
    Registered,
    /// Another node of this host holds the name: the mapper refused it [`TAKEN_TRIES`]
    /// times in a row.
    Taken,
}

/// How one round of [`keep_registered`] ended.
enum Round {
    /// The registration (or the mapper this node served) was held, then lost.
    Lost,
    /// The mapper refused the name.
    Refused,
}

impl Mapper {
    /// Starts registering `short` → `udp_port` with the mapper on `ip:mapper_port`, on the
    /// current runtime. `first` is told how the first registration went, once.
    pub fn start(
        ip: IpAddr,
        mapper_port: u16,
        short: String,
        udp_port: u16,
        first: std::sync::mpsc::Sender<FirstRegistration>,
    ) -> Self {
        let loopback = ip.is_unspecified() || ip == IpAddr::V4(Ipv4Addr::LOCALHOST);
        let here = Arc::new(Here { loopback, ..Here::default() });
        let task = tokio::spawn({
            let here = Arc::clone(&here);
            async move {
                let mut first = Some(first);
                let mut refusals = 0;
                loop {
                    match keep_registered(ip, mapper_port, &short, udp_port, &mut first, &here).await {
                        Ok(Round::Refused) if first.is_some() => {
                            refusals += 1;
                            if refusals == TAKEN_TRIES
                                && let Some(first) = first.take()
                            {
                                let _ = first.send(FirstRegistration::Taken);
                            }
                        }
                        Ok(_) => {}
                        Err(e) => tracing::debug!("port mapper: {e}"),
                    }
                    tokio::time::sleep(RETRY).await;
                }
            }
        });
        Self { task: Mutex::new(Some(task)), here }
    }

    /// Ends the registration, or the mapper this node serves: its name is the mapper's to
    /// give again once the mapper has read the connection's close, which has been sent when
    /// this returns.
    pub async fn stop(&self) {
        let task = self.task.lock().take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
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
            Some(table) => table.lock().ports.get(short).copied(),
            None => {
                let copied = self.here.copy.lock().get(short).copied();
                match copied {
                    Some(port) => Some(port),
                    None => parse_port(&self.ask_registered(short).await?)?,
                }
            }
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
        if let Some(task) = self.task.get_mut().take() {
            task.abort();
        }
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
/// hold the registration until that mapper goes away. `first`, while the first
/// registration is still to be told, hears that it is done; until then a refusal ends the
/// round at once (to be asked again), and after it, when that mapper goes away.
async fn keep_registered(
    ip: IpAddr,
    mapper_port: u16,
    short: &str,
    udp_port: u16,
    first: &mut Option<std::sync::mpsc::Sender<FirstRegistration>>,
    here: &Here,
) -> std::io::Result<Round> {
    if let Ok(listener) = TcpListener::bind(SocketAddr::new(ip, mapper_port)).await {
        tracing::debug!(%ip, mapper_port, "serving the port mapper");
        let mut registry = Registry::default();
        registry.ports.insert(short.to_owned(), udp_port);
        let table = Arc::new(Mutex::new(registry));
        *here.table.lock() = Some(Arc::clone(&table));
        tell_registered(first);
        let served = serve(listener, table).await;
        *here.table.lock() = None;
        return served.map(|()| Round::Lost);
    }
    let connect_ip = if ip.is_unspecified() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { ip };
    let stream = TcpStream::connect(SocketAddr::new(connect_ip, mapper_port)).await?;
    let (read, mut write) = stream.into_split();
    write.write_all(format!("REGISTER {short} {udp_port}\n").as_bytes()).await?;
    let mut lines = BufReader::new(read);
    let mut line = String::new();
    lines.read_line(&mut line).await?;
    if line.trim() != "OK" {
        if first.is_some() {
            return Ok(Round::Refused);
        }
        tracing::warn!(name = short, "the port mapper refused the registration: {}", line.trim());
        // Held until the mapper closes the connection.
        line.clear();
        while lines.read_line(&mut line).await? > 0 {
            line.clear();
        }
        return Ok(Round::Refused);
    }
    let waiting = Arc::new(Mutex::new(VecDeque::new()));
    *here.registration.lock().await = Some(Registration { write, waiting: Arc::clone(&waiting) });
    tell_registered(first);
    // Held until the mapper closes the connection; what comes meanwhile is the table and
    // its changes, or answers to lookups.
    let held = async {
        loop {
            line.clear();
            if (&mut lines).take(MAX_LINE_BYTES as u64).read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let line = line.trim();
            if !here.apply(line)
                && let Some(lookup) = waiting.lock().pop_front()
            {
                let _ = lookup.send(line.to_owned());
            }
        }
    };
    let result: std::io::Result<()> = held.await;
    *here.registration.lock().await = None;
    here.copy.lock().clear();
    // Lookups still waiting see their answer channel close.
    waiting.lock().clear();
    result.map(|()| Round::Lost)
}

/// Tells `first`, if it is still to be told, that the name is registered.
fn tell_registered(first: &mut Option<std::sync::mpsc::Sender<FirstRegistration>>) {
    if let Some(first) = first.take() {
        let _ = first.send(FirstRegistration::Registered);
    }
}

impl Here {
    /// Applies a line of the mapper's table or its changes to the copy; false if the line
    /// is something else (an answer).
    fn apply(&self, line: &str) -> bool {
        let mut words = line.split(' ');
        let mut copy = self.copy.lock();
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("UP"), Some(name), Some(port), None) => match port.parse() {
                Ok(port) => {
                    copy.insert(name.to_owned(), port);
                }
                Err(_) => return false,
            },
            (Some("DOWN"), Some(name), None, None) => {
                copy.remove(name);
            }
            _ => return false,
        }
        true
    }
}

/// What the serving node holds: the registered names, and the connections that hold them,
/// which are told of every change.
#[derive(Default)]
struct Registry {
    ports: HashMap<String, u16>,
    /// The lines to write to each registered connection, by its name.
    watchers: HashMap<String, Outbox>,
}

/// The lines to write to one connection, and what closes it when it does not read them.
#[derive(Clone)]
struct Outbox {
    lines: mpsc::Sender<String>,
    overflow: Arc<tokio::sync::Notify>,
}

impl Outbox {
    /// Queues `line`; false, and the connection told to close, when its queue is full or its
    /// writer has stopped (the socket failed).
    fn send(&self, line: String) -> bool {
        match self.lines.try_send(line) {
            Ok(()) => true,
            Err(_) => {
                self.overflow.notify_one();
                false
            }
        }
    }
}

impl Registry {
    /// `NAMES name=port ...`.
    fn names(&self) -> String {
        let names: Vec<String> = self.ports.iter().map(|(n, p)| format!("{n}={p}")).collect();
        format!("NAMES {}", names.join(" "))
    }

    /// Tells every registered connection but `name`'s.
    fn tell_others(&self, name: &str, line: &str) {
        for (watcher, outbox) in &self.watchers {
            if watcher != name {
                outbox.send(line.to_owned());
            }
        }
    }
}

type Table = Arc<Mutex<Registry>>;

async fn serve(listener: TcpListener, table: Table) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(client(stream, Arc::clone(&table), FLUSH_PATIENCE));
    }
}

/// One connection to the mapper: requests, and the registration it holds. Answers and the
/// table's changes go out through one queue, so that they keep their order. Once the client
/// stops sending, what is queued for it is written within `flush_patience`, or dropped.
async fn client(stream: TcpStream, table: Table, flush_patience: Duration) {
    let (read, mut write) = stream.into_split();
    let (lines_tx, mut lines) = mpsc::channel::<String>(QUEUED_LINES);
    let out = Outbox { lines: lines_tx, overflow: Arc::new(tokio::sync::Notify::new()) };
    let writer = tokio::spawn(async move {
        while let Some(mut line) = lines.recv().await {
            line.push('\n');
            if write.write_all(line.as_bytes()).await.is_err() {
                break;
            }
        }
    });
    let mut reader = BufReader::new(read);
    let mut registered: Option<String> = None;
    let mut overflowed = false;
    let mut line = String::new();
    loop {
        line.clear();
        let mut limited = (&mut reader).take(MAX_LINE_BYTES as u64);
        tokio::select! {
            read = limited.read_line(&mut line) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            () = out.overflow.notified() => {
                overflowed = true;
                break;
            }
        }
        let mut words = line.split_whitespace();
        let answer = match (words.next(), words.next(), words.next()) {
            (Some("REGISTER"), Some(name), Some(port)) if registered.is_none() => match port.parse::<u16>() {
                Ok(port) => {
                    let mut t = table.lock();
                    if t.ports.contains_key(name) {
                        "TAKEN".to_owned()
                    } else {
                        t.ports.insert(name.to_owned(), port);
                        t.tell_others(name, &format!("UP {name} {port}"));
                        // The table follows the answer, then its changes: under the lock,
                        // so that none is missed or told twice.
                        out.send("OK".to_owned());
                        for (other, port) in &t.ports {
                            out.send(format!("UP {other} {port}"));
                        }
                        t.watchers.insert(name.to_owned(), out.clone());
                        registered = Some(name.to_owned());
                        continue;
                    }
                }
                Err(_) => "ERROR bad port".to_owned(),
            },
            (Some("LOOKUP"), Some(name), None) => {
                table.lock().ports.get(name).map_or_else(|| "NONE".to_owned(), |p| format!("PORT {p}"))
            }
            (Some("NAMES"), None, None) => table.lock().names(),
            _ => "ERROR bad request".to_owned(),
        };
        if !out.send(answer) {
            overflowed = true;
            break;
        }
    }
    if let Some(name) = registered {
        let mut t = table.lock();
        t.ports.remove(&name);
        t.watchers.remove(&name);
        t.tell_others(&name, &format!("DOWN {name}"));
    }
    drop(out);
    if overflowed {
        // What it did not read would never be written: the writer waits on a full socket.
        writer.abort();
    } else {
        let abort = writer.abort_handle();
        if tokio::time::timeout(flush_patience, writer).await.is_err() {
            abort.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A free TCP port on loopback, for a test's own mapper.
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    /// A mapper task for `short` → `udp_port` with the mapper on loopback `port`, and how
    /// its first registration went (within a deadline).
    async fn first(port: u16, short: &str, udp_port: u16) -> (Mapper, FirstRegistration) {
        let (tx, rx) = std::sync::mpsc::channel();
        let mapper = Mapper::start(IpAddr::V4(Ipv4Addr::LOCALHOST), port, short.into(), udp_port, tx);
        let first = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(10)))
            .await
            .unwrap()
            .expect("told how the first registration went");
        (mapper, first)
    }

    /// A mapper task for `short` → `udp_port` with the mapper on loopback `port`, once it has
    /// registered (within a deadline).
    async fn started(port: u16, short: &str, udp_port: u16) -> Mapper {
        let (mapper, first) = first(port, short, udp_port).await;
        assert_eq!(first, FirstRegistration::Registered);
        mapper
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_name_held_by_a_live_node_is_taken_and_free_again_once_it_ends() {
        let port = free_port();
        let _serving = started(port, "a", 1111).await;
        let holder = started(port, "b", 2222).await;
        let (refused, outcome) = first(port, "b", 3333).await;
        assert_eq!(outcome, FirstRegistration::Taken);
        drop(refused);
        // The holder ends, and a node under its name registers at once after it: a restart.
        drop(holder);
        let restarted = started(port, "b", 4444).await;
        assert_eq!(lookup("b@localhost", port).await.unwrap(), SocketAddr::from((Ipv4Addr::LOCALHOST, 4444)));
        drop(restarted);
        // The name the serving node holds is taken the same way.
        assert_eq!(first(port, "a", 5555).await.1, FirstRegistration::Taken);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nodes_of_this_host_are_found_through_what_a_node_holds() {
        let port = free_port();
        let serving = started(port, "a", 1111).await;
        let registering = started(port, "b", 2222).await;
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

    /// Waits, within a deadline, until `mapper`'s copy of the table says `port` for `name`.
    async fn copy_says(mapper: &Mapper, name: &str, port: Option<u16>) {
        let copied = || mapper.here.copy.lock().get(name).copied();
        let settled = async {
            while copied() != port {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), settled)
            .await
            .unwrap_or_else(|_| panic!("{name}: the copy says {:?}, not {port:?}", copied()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_registered_node_is_told_the_table_and_its_changes() {
        let port = free_port();
        let _serving = started(port, "a", 1111).await;
        let watching = started(port, "b", 2222).await;
        // The table as it was at the registration.
        copy_says(&watching, "a", Some(1111)).await;
        copy_says(&watching, "b", Some(2222)).await;
        // A node that registers later, and ends.
        let later = started(port, "c", 3333).await;
        copy_says(&watching, "c", Some(3333)).await;
        drop(later);
        copy_says(&watching, "c", None).await;
        assert!(matches!(watching.lookup_here("c@localhost").await, Some(Err(LookupError::Unknown(_)))));
        // What a registration's connection reads is the table and its changes, then the
        // answers to its lookups, in order.
        let mut raw = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await.unwrap();
        raw.write_all(b"REGISTER d 4444\nLOOKUP a\n").await.unwrap();
        let mut lines = BufReader::new(raw).lines();
        let mut next = async || lines.next_line().await.unwrap().unwrap();
        assert_eq!(next().await, "OK");
        let mut table = vec![next().await, next().await, next().await];
        table.sort();
        assert_eq!(table, ["UP a 1111", "UP b 2222", "UP d 4444"]);
        assert_eq!(next().await, "PORT 1111");
        copy_says(&watching, "d", Some(4444)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_stops_sending_and_never_reads_is_let_go_after_the_flush_patience() {
        // Small buffers on both sides, so that the answers cannot all be written.
        let listener = tokio::net::TcpSocket::new_v4().unwrap();
        listener.set_send_buffer_size(4096).unwrap();
        listener.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
        let listener = listener.listen(1).unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(1024).unwrap();
        let mut peer = socket.connect(listener.local_addr().unwrap()).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let table: Table = Arc::new(Mutex::new(Registry::default()));
        table.lock().ports.insert("someone".into(), 1111);
        let served = tokio::spawn(client(stream, table, Duration::from_millis(100)));
        // Fewer requests than the queue holds, more answers than the buffers take; then the
        // client stops sending and never reads.
        peer.write_all("LOOKUP someone\n".repeat(QUEUED_LINES - 96).as_bytes()).await.unwrap();
        peer.shutdown().await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), served)
            .await
            .expect("the mapper let the connection go")
            .unwrap();
        // Open until here: a closed peer would fail the writer, and the test would prove nothing.
        drop(peer);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_that_does_not_read_its_answers_is_closed_with_its_registration() {
        let port = free_port();
        let _serving = started(port, "a", 1111).await;
        // A small receive buffer, so that the mapper's answers fill it and its queue soon.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(1024).unwrap();
        let mut stuck = socket.connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await.unwrap();
        stuck.write_all(b"REGISTER stuck 5555\n").await.unwrap();
        let registered = async {
            while lookup("stuck@localhost", port).await.is_err() {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), registered).await.expect("registered");
        // Requests, never reading an answer, until the mapper closes the connection.
        let requests = "LOOKUP a\n".repeat(1000);
        let closed = async {
            loop {
                if stuck.write_all(requests.as_bytes()).await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(60), closed).await.expect("the mapper closed it");
        // Its name went with it; the mapper serves others as before.
        assert!(matches!(lookup("stuck@localhost", port).await, Err(LookupError::Unknown(_))));
        assert_eq!(lookup("a@localhost", port).await.unwrap(), SocketAddr::from((Ipv4Addr::LOCALHOST, 1111)));
    }
}
