//! Storage in redb: each block, its receipts, the extrinsic index and the resulting state are
//! written in one write transaction, committed with fsync (redb's `Durability::Immediate`),
//! so a crash at any moment leaves the last committed block and everything before it.
//!
//! A damaged file is refused before it is used: [`Store::open`] and [`Store::open_read_only`]
//! first open the file through [`ReadOnlyFile`] (reads from the file, writes kept in memory)
//! and run redb's `check_integrity`, which walks every page's checksum. Whatever redb reports,
//! as an error or as a failed assertion, becomes one [`Damage`] naming the file, and the file
//! is left exactly as it was.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use deepnode_ledger_client::H256;
use parity_scale_codec::{Decode, Encode};
use redb::{Database, ReadableTable, ReadableTableMetadata, StorageBackend, TableDefinition};

use crate::block::{Block, Header, Receipts};
use crate::error::{Corruption, Damage, LedgerError, Record, storage};
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

/// The first bytes of every redb file (redb's `MAGICNUMBER`).
const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

/// The granularity of [`ReadOnlyFile`]'s in-memory writes.
const OVERLAY_PAGE: u64 = 4096;

/// A redb storage backend that reads a file and never writes it: redb's writes (the
/// "recovery required" flag it sets on open, a crash repair) land in memory pages that later
/// reads see.
#[derive(Debug)]
pub struct ReadOnlyFile {
    /// redb's own file backend over a read-only descriptor: its reads, and its exclusive
    /// `flock` (held while open, so a running server and a reader exclude each other). Its
    /// writes are never called.
    file: redb::backends::FileBackend,
    /// The real file's length.
    file_len: u64,
    inner: Mutex<Overlay>,
}

#[derive(Debug)]
struct Overlay {
    /// The length redb sees (it may `set_len`).
    len: u64,
    /// Bytes of the real file at or past this offset read as zeros (after a shrinking
    /// `set_len`).
    file_valid: u64,
    /// Written pages, by page index.
    pages: HashMap<u64, Box<[u8]>>,
}

impl ReadOnlyFile {
    /// Opens `path` for reading (a read-only descriptor) and locks it.
    pub fn open(path: &Path) -> Result<ReadOnlyFile, LedgerError> {
        let file = File::open(path)?;
        let file_len = file.metadata()?.len();
        let file = redb::backends::FileBackend::new(file).map_err(|e| redb_damage(path, e))?;
        Ok(ReadOnlyFile {
            file,
            file_len,
            inner: Mutex::new(Overlay {
                len: file_len,
                file_valid: file_len,
                pages: HashMap::new(),
            }),
        })
    }

    fn overlay(&self) -> std::sync::MutexGuard<'_, Overlay> {
        // The overlay is only ever left consistent (each method finishes its update before
        // returning), so a poisoned lock's data is still good.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The bytes of `[offset, offset + buf.len())` from the file alone (zeros where the file
    /// is shorter or was cut).
    fn read_file(&self, o: &Overlay, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        buf.fill(0);
        let end = o.file_valid.min(self.file_len);
        if offset < end {
            let n = usize::try_from(end - offset)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            buf[..n].copy_from_slice(&self.file.read(offset, n)?);
        }
        Ok(())
    }
}

impl StorageBackend for ReadOnlyFile {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.overlay().len)
    }

    fn read(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let o = self.overlay();
        let end = offset.checked_add(len as u64);
        if end.is_none_or(|end| end > o.len) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("read of {len} bytes at {offset} past the end ({})", o.len),
            ));
        }
        let mut buf = vec![0; len];
        self.read_file(&o, offset, &mut buf)?;
        let first = offset / OVERLAY_PAGE;
        let last = (offset + len as u64).div_ceil(OVERLAY_PAGE);
        for index in first..last {
            let Some(page) = o.pages.get(&index) else {
                continue;
            };
            let start = index * OVERLAY_PAGE;
            let from = offset.max(start);
            let to = (offset + len as u64).min(start + OVERLAY_PAGE);
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&page[(from - start) as usize..(to - start) as usize]);
        }
        Ok(buf)
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        let mut o = self.overlay();
        if len < o.len {
            o.file_valid = o.file_valid.min(len);
            let keep = len.div_ceil(OVERLAY_PAGE);
            o.pages.retain(|&index, _| index < keep);
            if let Some(page) = o.pages.get_mut(&(len / OVERLAY_PAGE)) {
                page[(len % OVERLAY_PAGE) as usize..].fill(0);
            }
        }
        o.len = len;
        Ok(())
    }

    fn sync_data(&self, _: bool) -> std::io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let mut o = self.overlay();
        let end = offset + data.len() as u64;
        for index in offset / OVERLAY_PAGE..end.div_ceil(OVERLAY_PAGE) {
            let start = index * OVERLAY_PAGE;
            if !o.pages.contains_key(&index) {
                let mut page = vec![0; OVERLAY_PAGE as usize].into_boxed_slice();
                self.read_file(&o, start, &mut page)?;
                o.pages.insert(index, page);
            }
            let from = offset.max(start);
            let to = end.min(start + OVERLAY_PAGE);
            if let Some(page) = o.pages.get_mut(&index) {
                page[(from - start) as usize..(to - start) as usize]
                    .copy_from_slice(&data[(from - offset) as usize..(to - offset) as usize]);
            }
        }
        o.len = o.len.max(end);
        Ok(())
    }
}

fn damaged(path: &Path, damage: Damage) -> LedgerError {
    LedgerError::Damaged {
        path: path.to_path_buf(),
        damage,
    }
}

/// Runs `f`, turning a panic inside redb (it asserts on some damaged files) into
/// [`Damage::Unreadable`]. The panic hook is silenced meanwhile so the one-line error is
/// the only report; this runs only while opening, before any other thread of the node exists.
fn no_panic<T>(path: &Path, f: impl FnOnce() -> Result<T, LedgerError>) -> Result<T, LedgerError> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    res.unwrap_or_else(|payload| {
        let why = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("the storage library failed an internal check");
        Err(damaged(path, Damage::Unreadable(why.replace('\n', " "))))
    })
}

/// The redb error of a damaged file as a [`Damage`].
fn redb_damage(path: &Path, e: impl Into<redb::Error>) -> LedgerError {
    let e = e.into();
    match e {
        redb::Error::DatabaseAlreadyOpen => damaged(path, Damage::InUse),
        other => damaged(path, Damage::Unreadable(other.to_string())),
    }
}

/// Checks that `path` is a regular, non-empty redb file and that redb reads every page with a
/// good checksum, without writing it. Returns the database opened on a [`ReadOnlyFile`].
fn check_file(path: &Path) -> Result<Database, LedgerError> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(damaged(path, Damage::NotAFile));
    }
    if meta.len() == 0 {
        return Err(damaged(path, Damage::Empty));
    }
    let backend = ReadOnlyFile::open(path)?;
    if backend
        .file
        .read(0, REDB_MAGIC.len())
        .is_ok_and(|magic| magic != REDB_MAGIC)
        || meta.len() < REDB_MAGIC.len() as u64
    {
        return Err(damaged(path, Damage::Foreign));
    }
    no_panic(path, || {
        let mut db = Database::builder()
            .create_with_backend(backend)
            .map_err(|e| redb_damage(path, e))?;
        match db.check_integrity() {
            Ok(true) => Ok(db),
            Ok(false) => Err(damaged(
                path,
                Damage::Unreadable("pages fail their checksums".into()),
            )),
            Err(e) => Err(redb_damage(path, e)),
        }
    })
}

/// An open ledger database.
pub struct Store {
    db: Database,
    path: PathBuf,
    created: bool,
}

fn decode<T: Decode>(record: Record, bytes: &[u8]) -> Result<T, LedgerError> {
    T::decode(&mut &bytes[..]).map_err(|error| Corruption::Decode { record, error }.into())
}

impl Store {
    /// Opens the database in `dir` for a node: creates it if the file does not exist; an
    /// existing file must be a sound redb file (checked without writing it, see the module
    /// docs), then redb opens it for writing, completing a crash repair if one is needed.
    pub fn open(dir: &Path) -> Result<Store, LedgerError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(DB_FILE);
        let created = match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(e.into()),
            Ok(_) => {
                drop(check_file(&path)?);
                false
            }
        };
        let db = no_panic(&path, || {
            Database::create(&path).map_err(|e| redb_damage(&path, e))
        })?;
        Ok(Store { db, path, created })
    }

    /// Opens the database in `dir` without ever writing it (`verify`): the file must exist
    /// and be sound; redb's writes (a crash repair) stay in memory.
    pub fn open_read_only(dir: &Path) -> Result<Store, LedgerError> {
        let path = dir.join(DB_FILE);
        let db = check_file(&path)?;
        Ok(Store {
            db,
            path,
            created: false,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether [`Store::open`] created the file (it did not exist).
    pub fn created(&self) -> bool {
        self.created
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
