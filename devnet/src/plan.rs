//! The address plan of a devnet on separate hosts (network namespaces). Node `i` has three
//! addresses, all with the host part `a.b` of [`host_part`]:
//!
//! - `10.213.a.b`: its link's address on the bridge (the network between hosts; the ledger is
//!   `10.213.0.1` there);
//! - `10.214.a.b`: its public address, the endpoint it serves on the ledger (port [`PORT`]);
//! - `10.216.a.b`: the address its connections come from at the node they reach.
//!
//! A node's namespace holds the node alone; its link's namespace holds the relays that carry
//! every byte the node sends or receives (see `link_host`). A connection from node `i` to node
//! `j` crosses `i`'s link, the bridge and `j`'s link, each link with its node's profile.

use std::net::{Ipv4Addr, SocketAddr};

/// The port each node serves peers on, at its public address.
pub const PORT: u16 = 7000;
/// The port of each link's ingress relay, at the link's bridge address.
pub const INGRESS_PORT: u16 = 7001;
/// The ledger's RPC port: on loopback in the ledger's and in each node's namespace, and at the
/// ledger's bridge address.
pub const RPC_PORT: u16 = 9944;
/// The most nodes the plan has addresses for.
pub const MAX_NODES: usize = 250 * 250;

/// The ledger's address on the bridge.
pub const LEDGER: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 1);
/// The address of each link on its node's side: the node's gateway.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 0, 1);
/// The bridge's network, `/16`.
pub const BRIDGE_NET: [u8; 2] = [10, 213];
/// The public addresses' network, `/16`.
pub const PUBLIC_NET: [u8; 2] = [10, 214];
/// The source addresses' network, `/16`.
pub const SOURCE_NET: [u8; 2] = [10, 216];

/// The host part `(a, b)` of node `i`: `a = 1 + i / 250`, `b = 1 + i % 250`.
pub fn host_part(i: usize) -> [u8; 2] {
    [(1 + i / 250) as u8, (1 + i % 250) as u8]
}

/// The node of a host part, if any.
pub fn index(part: [u8; 2]) -> Option<usize> {
    let [a, b] = part;
    (a >= 1 && (1..=250).contains(&b)).then(|| usize::from(a - 1) * 250 + usize::from(b - 1))
}

fn addr(net: [u8; 2], i: usize) -> Ipv4Addr {
    let [a, b] = host_part(i);
    Ipv4Addr::new(net[0], net[1], a, b)
}

/// Node `i`'s link on the bridge.
pub fn bridge(i: usize) -> Ipv4Addr {
    addr(BRIDGE_NET, i)
}

/// Node `i`'s public address.
pub fn public(i: usize) -> Ipv4Addr {
    addr(PUBLIC_NET, i)
}

/// The address node `i`'s connections come from at the node they reach.
pub fn source(i: usize) -> Ipv4Addr {
    addr(SOURCE_NET, i)
}

/// The node whose address in `net` is `ip`.
pub fn node_of(net: [u8; 2], ip: Ipv4Addr) -> Option<usize> {
    let o = ip.octets();
    if o[..2] != net {
        return None;
    }
    index([o[2], o[3]])
}

/// Node `i`'s endpoint as served on the ledger.
pub fn endpoint(i: usize) -> SocketAddr {
    SocketAddr::from((public(i), PORT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_has_its_own_addresses_and_they_map_back() {
        for i in [0, 1, 249, 250, 999, MAX_NODES - 1] {
            assert_eq!(node_of(PUBLIC_NET, public(i)), Some(i));
            assert_eq!(node_of(BRIDGE_NET, bridge(i)), Some(i));
            assert_eq!(node_of(SOURCE_NET, source(i)), Some(i));
            assert_ne!(bridge(i), LEDGER);
        }
        assert_eq!(public(0), Ipv4Addr::new(10, 214, 1, 1));
        assert_eq!(public(250), Ipv4Addr::new(10, 214, 2, 1));
        assert_eq!(node_of(PUBLIC_NET, LEDGER), None);
        assert_eq!(node_of(BRIDGE_NET, LEDGER), None);
    }
}
