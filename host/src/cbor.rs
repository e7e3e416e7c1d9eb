//! Messages in the guest SDK's encoding, for host code that talks to guests: CBOR (RFC 8949)
//! with pids as tag [`PID_TAG`] over `[node-name, incarnation, index]` (wit/MESSAGES.md).

use ciborium::Value;

use crate::node::Node;
use crate::process::{NodeId, Pid};

/// CBOR tag of a pid: the ASCII bytes "SPID".
pub const PID_TAG: u64 = 0x5350_4944;

/// Encodes a CBOR value.
pub fn to_bytes(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Encoding a `Value` into a Vec cannot fail.
    ciborium::into_writer(value, &mut out).expect("encoding a CBOR value");
    out
}

/// Decodes a CBOR value; `None` if the bytes are not CBOR.
pub fn from_bytes(bytes: &[u8]) -> Option<Value> {
    ciborium::from_reader(bytes).ok()
}

impl Node {
    /// `pid` as a CBOR value a guest decodes as a `Pid`.
    pub fn pid_value(&self, pid: Pid) -> Value {
        let name = self.node_name(pid.node).unwrap_or_else(|| format!("{:?}", pid.node));
        Value::Tag(
            PID_TAG,
            Box::new(Value::Array(vec![
                Value::Text(name),
                Value::Integer(pid.incarnation.into()),
                Value::Integer(pid.index.into()),
            ])),
        )
    }

    /// The pid a guest encoded as `value`, remembering its node's name.
    pub fn value_pid(&self, value: &Value) -> Option<Pid> {
        let Value::Tag(PID_TAG, inner) = value else { return None };
        let Value::Array(parts) = inner.as_ref() else { return None };
        let [Value::Text(name), Value::Integer(inc), Value::Integer(idx)] = parts.as_slice() else {
            return None;
        };
        let node = NodeId::of(name);
        self.remember_node(node, name);
        Some(Pid { node, incarnation: u32::try_from(*inc).ok()?, index: u64::try_from(*idx).ok()? })
    }
}
