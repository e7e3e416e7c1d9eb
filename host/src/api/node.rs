//! `spore:process/node`: this node, names of nodes, node events.

use super::spore::process::node::Host;
use crate::process::NodeId;
use crate::process::state::ProcState;

/// Longest node name accepted from a guest.
const MAX_NODE_NAME_BYTES: usize = 255;

impl Host for ProcState {
    fn name(&mut self) -> wasmtime::Result<String> {
        Ok(self.node.name.clone())
    }

    fn resolve(&mut self, name: String) -> wasmtime::Result<u64> {
        let id = NodeId::of(&name);
        if name.len() <= MAX_NODE_NAME_BYTES {
            self.node.node_names.entry(id).or_insert(name);
        }
        Ok(id.0)
    }

    fn name_of(&mut self, node: u64) -> wasmtime::Result<Option<String>> {
        Ok(self.node.node_names.get(&NodeId(node)).map(|n| n.value().clone()))
    }

    fn nodes(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(Vec::new())
    }

    fn monitor_nodes(&mut self, on: bool) -> wasmtime::Result<()> {
        self.me.signals.lock().monitors_nodes = on;
        Ok(())
    }
}
