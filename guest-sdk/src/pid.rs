//! [`Pid`] and references, and how they travel inside messages.
//!
//! A pid is encoded in CBOR as tag [`PID_TAG`] over `[node-name, incarnation, index]`, so a
//! pid received from anywhere can be used to reply or forwarded again (wit/MESSAGES.md).

use crate::prelude::*;

use alloc::rc::Rc;
use core::cell::RefCell;
use core::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec::PID_MARKER;

use crate::bindings::spore::process::{node as wit_node, types as wit};

/// CBOR tag of a pid: the ASCII bytes "SPID".
pub const PID_TAG: u64 = 0x5350_4944;

/// A process identifier. It names its node, so it works the same for local and remote
/// processes, and stays valid inside messages sent anywhere.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid {
    pub(crate) node: u64,
    pub(crate) incarnation: u32,
    pub(crate) index: u64,
}

/// A reference unique on its node: monitors, reply tags, timers.
pub type Ref = u64;

impl Pid {
    /// The calling process's pid.
    pub fn me() -> Pid {
        crate::process::self_pid()
    }

    /// The name of the node this process runs on.
    pub fn node(&self) -> String {
        node_name(self.node).map_or_else(|| format!("{:016x}", self.node), |n| n.to_string())
    }

    /// The process's number on its node.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The pid as [`crate::codec`] hands it to [`PidVisitor`]: node, incarnation, index.
    pub(crate) fn to_bytes(self) -> [u8; 20] {
        let mut bytes = [0; 20];
        bytes[..8].copy_from_slice(&self.node.to_le_bytes());
        bytes[8..12].copy_from_slice(&self.incarnation.to_le_bytes());
        bytes[12..].copy_from_slice(&self.index.to_le_bytes());
        bytes
    }

    pub(crate) fn to_wit(self) -> wit::Pid {
        wit::Pid { node: self.node, incarnation: self.incarnation, index: self.index }
    }

    pub(crate) fn from_wit(p: wit::Pid) -> Pid {
        Pid { node: p.node, incarnation: p.incarnation, index: p.index }
    }
}

impl fmt::Debug for Pid {
    /// Everything: `<node.index.incarnation>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{:04x}.{}.{}>", self.node >> 48, self.index, self.incarnation)
    }
}

impl fmt::Display for Pid {
    /// Erlang-like: `<node.index>`, the node as the first hex digits of its id.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{:04x}.{}>", self.node >> 48, self.index)
    }
}

process_local! {
    /// Node names this process has seen, both ways, so each costs one host call at most.
    static NODES: RefCell<NodeNames> = RefCell::new(NodeNames(Vec::new()));
}

/// A list, searched from the end: a process knows a handful of nodes, and a list costs a
/// guest about 5 KB less code than two hash maps (hashbrown and SipHash); every guest pays
/// for its code in compile time and data pages.
struct NodeNames(Vec<(u64, Rc<str>)>);

impl NodeNames {
    fn remember(&mut self, id: u64, name: &str) -> Rc<str> {
        let name: Rc<str> = Rc::from(name);
        self.0.retain(|(i, n)| *i != id && **n != *name);
        self.0.push((id, Rc::clone(&name)));
        name
    }

    fn by_id(&self, id: u64) -> Option<Rc<str>> {
        self.0.iter().rev().find(|(i, _)| *i == id).map(|(_, n)| Rc::clone(n))
    }

    fn by_name(&self, name: &[u8]) -> Option<u64> {
        self.0.iter().rev().find(|(_, n)| same_bytes(n.as_bytes(), name)).map(|(i, _)| *i)
    }
}

/// `a == b`, eight bytes at a time: a node name is compared at every pid a message
/// carries, and the slice comparison calls wasi-libc's `memcmp`, a byte loop.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let word =
        |x: &[u8], i: usize| x.get(i..i + 8).map(|w| u64::from_le_bytes(w.try_into().unwrap_or_default()));
    // Whole words, then the last eight bytes (overlapping the last word read).
    (0..n - 8).step_by(8).all(|i| word(a, i) == word(b, i)) && word(a, n - 8) == word(b, n - 8)
}

/// The name of node `id`, asking the host the first time.
pub(crate) fn node_name(id: u64) -> Option<Rc<str>> {
    if let Some(name) = NODES.with(|n| n.borrow().by_id(id)) {
        return Some(name);
    }
    let name = wit_node::name_of(id)?;
    Some(NODES.with(|n| n.borrow_mut().remember(id, &name)))
}

/// The id of the node called `name`, telling the host about it the first time.
pub(crate) fn node_id(name: &str) -> u64 {
    // Text is UTF-8: the lookup below never refuses it.
    node_id_of_bytes(name.as_bytes()).unwrap_or_default()
}

/// [`node_id`] of a name as it lies in a message: a name seen before is found without
/// checking it is UTF-8 again (it equals one that was). `None` if it is not UTF-8. One copy
/// of this code serves both, out of line: every guest ships it.
#[inline(never)]
pub(crate) fn node_id_of_bytes(name: &[u8]) -> Option<u64> {
    if let Some(id) = NODES.with(|n| n.borrow().by_name(name)) {
        return Some(id);
    }
    let name = core::str::from_utf8(name).ok()?;
    let id = wit_node::resolve(name);
    NODES.with(|n| n.borrow_mut().remember(id, name));
    Some(id)
}

impl Serialize for Pid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let name = node_name(self.node)
            .ok_or_else(|| serde::ser::Error::custom(format!("pid {self} of an unknown node")))?;
        s.serialize_newtype_struct(PID_MARKER, &(&*name, self.incarnation, self.index))
    }
}

impl<'de> Deserialize<'de> for Pid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_newtype_struct(PID_MARKER, PidVisitor)
    }
}

/// Reads `[node-name, incarnation, index]`, behind the pid tag in CBOR.
struct PidVisitor;

impl<'de> Visitor<'de> for PidVisitor {
    type Value = Pid;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a pid")
    }

    /// The pid as Spore's codec hands it over, already read ([`Pid::to_bytes`]).
    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Pid, E> {
        let field = |range: core::ops::Range<usize>| bytes.get(range).unwrap_or_default();
        match (field(0..8).try_into(), field(8..12).try_into(), field(12..20).try_into()) {
            (Ok(node), Ok(incarnation), Ok(index)) if bytes.len() == 20 => Ok(Pid {
                node: u64::from_le_bytes(node),
                incarnation: u32::from_le_bytes(incarnation),
                index: u64::from_le_bytes(index),
            }),
            _ => Err(de::Error::invalid_length(bytes.len(), &self)),
        }
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Pid, D::Error> {
        d.deserialize_tuple(3, self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Pid, A::Error> {
        let missing = || de::Error::invalid_length(3, &"a pid of three elements");
        let NodeName(node) = seq.next_element()?.ok_or_else(missing)?;
        let incarnation = seq.next_element()?.ok_or_else(missing)?;
        let index = seq.next_element()?.ok_or_else(missing)?;
        Ok(Pid { node, incarnation, index })
    }
}

/// A node name read as the node's id, without keeping the text.
struct NodeName(u64);

impl<'de> Deserialize<'de> for NodeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// Resolves the name where it lies in the message.
        struct NameVisitor;

        impl Visitor<'_> for NameVisitor {
            type Value = NodeName;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a node name")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<NodeName, E> {
                Ok(NodeName(node_id(name)))
            }
        }

        d.deserialize_str(NameVisitor)
    }
}

/// Makes `name` known without asking the host, for tests that run natively.
#[cfg(test)]
pub(crate) fn remember_node_for_test(name: &str) -> u64 {
    let id = 0x1234_5678_9abc_def0;
    NODES.with(|n| n.borrow_mut().remember(id, name));
    id
}

#[cfg(test)]
mod tests {
    use super::same_bytes;

    #[test]
    fn names_compare_equal_exactly_when_their_bytes_do() {
        let name = b"node-with-a-name-of-twenty-nine";
        for len in 0..name.len() {
            let a = &name[..len];
            assert!(same_bytes(a, a));
            assert!(!same_bytes(a, &name[..len + 1]));
            for i in 0..len {
                let mut b = a.to_vec();
                b[i] ^= 0x20;
                assert!(!same_bytes(a, &b), "{len} bytes differing at {i}");
            }
        }
    }
}
