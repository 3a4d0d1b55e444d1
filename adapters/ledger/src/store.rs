//! Storage in redb: each block, its receipts, the extrinsic index and the resulting state are
//! written in one write transaction, committed with fsync (redb's `Durability::Immediate`),
//! so a crash at any moment leaves the last committed block and everything before it.

use std::path::Path;

use parity_scale_codec::{Decode, Encode};
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::LedgerError;
use crate::block::{Block, Header, Receipts};
use crate::error::{Corruption, Record, storage};
use crate::extrinsic::H256;
use crate::state::{Genesis, LedgerState};

/// Block number -> SCALE `Block`.
const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
/// Block number -> SCALE `Receipts`.
const RECEIPTS: TableDefinition<u64, &[u8]> = TableDefinition::new("receipts");
/// Extrinsic hash -> SCALE `(block, index)`.
const TX_INDEX: TableDefinition<&[u8; 32], (u64, u32)> = TableDefinition::new("tx_index");
/// `genesis` (SCALE `Genesis`) and `state` (SCALE `LedgerState` after the head block).
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// The database file inside the data directory.
pub const DB_FILE: &str = "ledger.redb";

/// An open ledger database.
pub struct Store {
    db: Database,
}

fn decode<T: Decode>(record: Record, bytes: &[u8]) -> Result<T, LedgerError> {
    T::decode(&mut &bytes[..]).map_err(|error| Corruption::Decode { record, error }.into())
}

impl Store {
    /// Opens (or creates) the database in `dir`, repairing it after a crash if needed.
    pub fn open(dir: &Path) -> Result<Store, LedgerError> {
        std::fs::create_dir_all(dir)?;
        let db = Database::create(dir.join(DB_FILE)).map_err(storage)?;
        Ok(Store { db })
    }

    /// Whether no genesis has been written yet.
    pub fn is_empty(&self) -> Result<bool, LedgerError> {
        Ok(self.genesis()?.is_none())
    }

    /// The genesis, if written.
    pub fn genesis(&self) -> Result<Option<Genesis>, LedgerError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let table = match tx.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(storage(e)),
        };
        let got = table.get("genesis").map_err(storage)?;
        got.map(|v| decode(Record::Genesis, v.value())).transpose()
    }

    /// The state after the head block.
    pub fn state(&self) -> Result<LedgerState, LedgerError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let table = tx.open_table(META).map_err(storage)?;
        let got = table.get("state").map_err(storage)?;
        let v = got.ok_or(Corruption::NoState)?;
        decode(Record::State, v.value())
    }

    /// The highest committed block number.
    pub fn head(&self) -> Result<u64, LedgerError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let table = tx.open_table(BLOCKS).map_err(storage)?;
        let last = table.last().map_err(storage)?;
        last.map(|(k, _)| k.value())
            .ok_or_else(|| Corruption::NoBlocks.into())
    }

    /// Block `number`, if committed.
    pub fn block(&self, number: u64) -> Result<Option<Block>, LedgerError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let table = tx.open_table(BLOCKS).map_err(storage)?;
        let got = table.get(number).map_err(storage)?;
        got.map(|v| decode(Record::Block, v.value())).transpose()
    }

    /// Block `number`'s receipts, if committed.
    pub fn receipts(&self, number: u64) -> Result<Option<Receipts>, LedgerError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let table = tx.open_table(RECEIPTS).map_err(storage)?;
        let got = table.get(number).map_err(storage)?;
        got.map(|v| decode(Record::Receipts, v.value())).transpose()
    }

    /// Where a committed extrinsic is: `(block, index)`.
    pub fn locate(&self, hash: &H256) -> Result<Option<(u64, u32)>, LedgerError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let table = tx.open_table(TX_INDEX).map_err(storage)?;
        let got = table.get(&hash.0).map_err(storage)?;
        Ok(got.map(|v| v.value()))
    }

    /// Number of committed blocks, genesis included.
    pub fn len(&self) -> Result<u64, LedgerError> {
        let tx = self.db.begin_read().map_err(storage)?;
        let table = tx.open_table(BLOCKS).map_err(storage)?;
        table.len().map_err(storage)
    }

    /// Writes the genesis, its block 0 and its state in one transaction.
    pub fn init(
        &self,
        genesis: &Genesis,
        block: &Block,
        state: &LedgerState,
    ) -> Result<(), LedgerError> {
        let tx = self.db.begin_write().map_err(storage)?;
        {
            let mut meta = tx.open_table(META).map_err(storage)?;
            meta.insert("genesis", genesis.encode().as_slice())
                .map_err(storage)?;
        }
        Self::put(&tx, block, &Receipts::default(), &state.encode())?;
        tx.commit().map_err(storage)
    }

    /// Commits a block, its receipts and the resulting state atomically.
    pub fn commit(
        &self,
        block: &Block,
        receipts: &Receipts,
        state: &LedgerState,
    ) -> Result<(), LedgerError> {
        self.commit_encoded(block, receipts, &state.encode())
    }

    /// [`Store::commit`] with the state already SCALE-encoded (the producer hashes the same
    /// bytes into the header, so the state is encoded once a block).
    pub(crate) fn commit_encoded(
        &self,
        block: &Block,
        receipts: &Receipts,
        state: &[u8],
    ) -> Result<(), LedgerError> {
        let tx = self.db.begin_write().map_err(storage)?;
        Self::put(&tx, block, receipts, state)?;
        tx.commit().map_err(storage)
    }

    fn put(
        tx: &redb::WriteTransaction,
        block: &Block,
        receipts: &Receipts,
        state: &[u8],
    ) -> Result<(), LedgerError> {
        let number = block.header.number;
        tx.open_table(BLOCKS)
            .map_err(storage)?
            .insert(number, block.encode().as_slice())
            .map_err(storage)?;
        tx.open_table(RECEIPTS)
            .map_err(storage)?
            .insert(number, receipts.encode().as_slice())
            .map_err(storage)?;
        {
            let mut index = tx.open_table(TX_INDEX).map_err(storage)?;
            for (k, ext) in block.extrinsics.iter().enumerate() {
                let k = u32::try_from(k).map_err(|_| Corruption::BlockTooLong)?;
                index.insert(&ext.hash().0, (number, k)).map_err(storage)?;
            }
        }
        tx.open_table(META)
            .map_err(storage)?
            .insert("state", state)
            .map_err(storage)?;
        Ok(())
    }

    /// The header of the head block.
    pub fn head_header(&self) -> Result<Header, LedgerError> {
        let head = self.head()?;
        self.block(head)?
            .map(|b| b.header)
            .ok_or_else(|| Corruption::HeadMissing(head).into())
    }
}
