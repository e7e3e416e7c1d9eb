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

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

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
                return match answer.strip_prefix("PORT ").map(str::parse::<u16>) {
                    Some(Ok(port)) => Ok(SocketAddr::new(addr.ip(), port)),
                    _ if answer == "NONE" => Err(LookupError::Unknown(name.to_owned())),
                    _ => Err(LookupError::Protocol(host.to_owned())),
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
        let task = tokio::spawn(async move {
            loop {
                if let Err(e) = keep_registered(ip, mapper_port, &short, udp_port, &registered).await {
                    tracing::debug!("port mapper: {e}");
                }
                tokio::time::sleep(RETRY).await;
            }
        });
        Self { task }
    }
}

impl Drop for Mapper {
    fn drop(&mut self) {
        self.task.abort();
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
) -> std::io::Result<()> {
    if let Ok(listener) = TcpListener::bind(SocketAddr::new(ip, mapper_port)).await {
        tracing::debug!(%ip, mapper_port, "serving the port mapper");
        let table = Arc::new(Mutex::new(HashMap::from([(short.to_owned(), udp_port)])));
        let _ = registered.send(());
        return serve(listener, table).await;
    }
    let connect_ip = if ip.is_unspecified() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { ip };
    let stream = TcpStream::connect(SocketAddr::new(connect_ip, mapper_port)).await?;
    let (read, mut write) = stream.into_split();
    write.write_all(format!("REGISTER {short} {udp_port}\n").as_bytes()).await?;
    let mut lines = BufReader::new(read);
    let mut line = String::new();
    lines.read_line(&mut line).await?;
    if line.trim() == "OK" {
        let _ = registered.send(());
    } else {
        tracing::warn!(name = short, "the port mapper refused the registration: {}", line.trim());
    }
    // Held until the mapper closes the connection.
    line.clear();
    while lines.read_line(&mut line).await? > 0 {
        line.clear();
    }
    Ok(())
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
