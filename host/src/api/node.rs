//! `spore:process/node`: this node, names of nodes, node events.

use super::spore::process::node::Host;
use crate::process::NodeId;
use crate::process::state::ProcState;
use crate::transport::ConnectError;

impl Host for ProcState {
    fn name(&mut self) -> wasmtime::Result<String> {
        Ok(self.node.name.clone())
    }

    fn resolve(&mut self, name: String) -> wasmtime::Result<u64> {
        let id = NodeId::of(&name);
        // A malformed name is not remembered: pids of its id reach no one.
        self.node.remember_node(id, &name);
        Ok(id.0)
    }

    fn name_of(&mut self, node: u64) -> wasmtime::Result<Option<String>> {
        Ok(self.node.node_name(NodeId(node)))
    }

    fn nodes(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.node.dist.as_ref().map(|d| d.nodes()).unwrap_or_default())
    }

    fn monitor_nodes(&mut self, on: bool) -> wasmtime::Result<()> {
        self.me.signals.lock().monitors_nodes = on;
        Ok(())
    }

    fn monitor_node(&mut self, name: String, on: bool) -> wasmtime::Result<()> {
        self.node.monitor_node(&self.me, &name, on);
        Ok(())
    }

    async fn connect(&mut self, name: String) -> wasmtime::Result<Result<(), String>> {
        if self.node.dist.is_none() {
            return Ok(Err(ConnectError::NotDistributed.to_string()));
        }
        if !crate::proto::handshake::valid_node_name(&name) {
            return Ok(Err(format!("bad node name `{name}`")));
        }
        Ok(self.node.connect(&name).await.map_err(|e| e.to_string()))
    }

    fn disconnect(&mut self, name: String) -> wasmtime::Result<bool> {
        Ok(self.node.disconnect(&name))
    }
}
