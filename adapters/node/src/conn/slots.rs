//! A node's session and byte limits, shared by all its sessions: the table of accepted
//! connections per address and sessions per account, and the slots a session holds in it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use super::ServeConfig;
use crate::transport::AccountKey;

/// A node's state behind its session and byte limits, shared by all its sessions.
pub(crate) struct Shared {
    table: Mutex<Table>,
    /// Bytes of unfinished messages, over all sessions.
    pub(super) open_bytes: Arc<Semaphore>,
    open_bytes_max: usize,
    /// Turns on the model ([`ServeConfig::model_threads`]).
    pub(super) model: Arc<Semaphore>,
}

#[derive(Default)]
struct Table {
    /// Accepted connections, in the handshake or in session.
    accepted: usize,
    by_address: HashMap<IpAddr, usize>,
    accounts: HashMap<AccountKey, Account>,
    /// Sessions running, accepted and dialed.
    sessions: usize,
}

struct Account {
    /// Accepted sessions of the account.
    accepted: usize,
    /// Sessions of the account, accepted and dialed.
    sessions: usize,
    /// The account's request permits, shared by its sessions.
    permits: Arc<Semaphore>,
}

impl Shared {
    pub(crate) fn new(config: &ServeConfig) -> Arc<Shared> {
        let max = config.max_open_bytes_total.min(Semaphore::MAX_PERMITS);
        Arc::new(Shared {
            table: Mutex::new(Table::default()),
            open_bytes: Arc::new(Semaphore::new(max)),
            open_bytes_max: max,
            model: Arc::new(Semaphore::new(config.model_threads.max(1))),
        })
    }

    /// A slot for a connection accepted from `ip`, or `None` when the node or the address is
    /// at its limit.
    pub(crate) fn address_slot(
        self: &Arc<Self>,
        ip: IpAddr,
        config: &ServeConfig,
    ) -> Option<AddressSlot> {
        let mut t = self.table.lock().ok()?;
        let n = t.by_address.get(&ip).copied().unwrap_or(0);
        if t.accepted >= config.max_sessions || n >= config.max_sessions_per_address {
            return None;
        }
        t.accepted += 1;
        t.by_address.insert(ip, n + 1);
        Some(AddressSlot {
            shared: Arc::clone(self),
            ip,
        })
    }

    /// Registers a session of `peer` (`accepted`: the peer dialed); `None` when the account
    /// is at its limit of accepted sessions.
    pub(crate) fn account_slot(
        self: &Arc<Self>,
        peer: AccountKey,
        accepted: bool,
        config: &ServeConfig,
    ) -> Option<AccountSlot> {
        let mut t = self.table.lock().ok()?;
        let a = t.accounts.entry(peer).or_insert_with(|| Account {
            accepted: 0,
            sessions: 0,
            permits: Arc::new(Semaphore::new(config.per_peer)),
        });
        if accepted && a.accepted >= config.max_sessions_per_account {
            return None;
        }
        a.accepted += usize::from(accepted);
        a.sessions += 1;
        let permits = Arc::clone(&a.permits);
        t.sessions += 1;
        Some(AccountSlot {
            shared: Arc::clone(self),
            peer,
            accepted,
            permits,
        })
    }

    /// Sessions running now, accepted and dialed.
    pub(crate) fn sessions(&self) -> usize {
        self.table.lock().map_or(0, |t| t.sessions)
    }

    /// Bytes of unfinished messages held now.
    pub(crate) fn open_bytes(&self) -> usize {
        self.open_bytes_max - self.open_bytes.available_permits()
    }
}

/// An accepted connection's place in the node's limits, given back when dropped.
pub(crate) struct AddressSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Ok(mut t) = self.shared.table.lock() {
            t.accepted = t.accepted.saturating_sub(1);
            if let Some(n) = t.by_address.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    t.by_address.remove(&self.ip);
                }
            }
        }
    }
}

/// A session's place in its account's limits, given back when dropped.
pub(crate) struct AccountSlot {
    shared: Arc<Shared>,
    peer: AccountKey,
    accepted: bool,
    pub(super) permits: Arc<Semaphore>,
}

impl Drop for AccountSlot {
    fn drop(&mut self) {
        if let Ok(mut t) = self.shared.table.lock() {
            t.sessions = t.sessions.saturating_sub(1);
            if let Some(a) = t.accounts.get_mut(&self.peer) {
                a.sessions = a.sessions.saturating_sub(1);
                a.accepted = a.accepted.saturating_sub(usize::from(self.accepted));
            }
            // An account is forgotten once it has no session and no request in flight (each
            // holds its permits); until then a new session shares the same permits.
            let mine = &self.permits;
            t.accounts.retain(|_, a| {
                a.sessions > 0
                    || Arc::strong_count(&a.permits)
                        > 1 + usize::from(Arc::ptr_eq(&a.permits, mine))
            });
        }
    }
}

/// What a session holds in its node's limits.
pub(crate) struct Slots {
    /// Set for an accepted session.
    pub(crate) _address: Option<AddressSlot>,
    pub(crate) account: AccountSlot,
}
