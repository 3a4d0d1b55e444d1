//! A node's metrics file as the devnet reads it: one JSON line per status of the node
//! ([`deepnode_node::life::Status`], whose serde form is the format's one definition; the node
//! CLI writes it).

use std::path::Path;

use deepnode_node::life::Status;

/// Every complete line of a metrics file, in order (a torn last line is skipped; a missing
/// file has none).
pub fn read_metrics(path: &Path) -> Vec<Status> {
    std::fs::read_to_string(path)
        .map(|text| {
            text.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default()
}
