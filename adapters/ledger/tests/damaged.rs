//! Damaged, empty and foreign database files: `Chain::open` (what `ledger run` does) and
//! `verify` end in a [`LedgerError::Damaged`] naming the file, never a panic, and never change
//! a byte of it.

use std::path::{Path, PathBuf};

use deepnode_ledger::{
    Call, Chain, DB_FILE, Damage, Extrinsic, Genesis, LedgerError, Store, Wallet, verify,
};

/// A chain of 12 blocks with a stake change in each.
fn build(dir: &Path) -> Wallet {
    let w = Wallet::from_seed([1; 32]);
    let mut g = Genesis::default();
    g.config.tempo = 3;
    g.endowments = vec![(w.account(), 1_000_000)];
    let mut chain = Chain::open(dir, Some(&g)).expect("open");
    let id = chain.genesis_hash();
    chain
        .submit_verified(Extrinsic::sign(w.key(), &id, 0, Call::Register))
        .expect("register");
    for nonce in 1..=12u64 {
        let call = Call::AddStake { uid: 0, amount: 7 };
        chain
            .submit_verified(Extrinsic::sign(w.key(), &id, nonce, call))
            .expect("stake");
        chain.produce_block(nonce).expect("block");
    }
    w
}

/// Writes `bytes` as the database of a new directory.
fn with_db(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(DB_FILE);
    std::fs::write(&path, bytes).expect("write");
    (dir, path)
}

/// Opens and verifies a directory holding `bytes`; both must refuse it as damaged, without a
/// panic and without changing the file. Returns the two errors.
fn refused(bytes: &[u8]) -> Vec<LedgerError> {
    let (dir, path) = with_db(bytes);
    let mut errors = Vec::new();
    let open = Chain::open(dir.path(), None).map(|_| ());
    let check = verify(dir.path()).map(|_| ());
    for res in [check, open] {
        let err = res.expect_err("a damaged file is refused");
        let line = err.to_string();
        assert!(
            matches!(err, LedgerError::Damaged { .. }),
            "{line}: not Damaged"
        );
        assert!(line.contains(&path.display().to_string()), "{line}");
        assert!(!line.contains('\n'), "one line: {line}");
        errors.push(err);
    }
    assert_eq!(std::fs::read(&path).expect("read"), bytes, "file unchanged");
    errors
}

fn damage_of(e: &LedgerError) -> &Damage {
    match e {
        LedgerError::Damaged { damage, .. } => damage,
        other => unreachable!("{other}"),
    }
}

#[test]
fn truncated_or_extended_files_are_refused_without_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path());
    let orig = std::fs::read(dir.path().join(DB_FILE)).expect("read");
    refused(&orig[..4096]);
    refused(&orig[..orig.len() / 2]);
    let mut garbage = orig.clone();
    garbage.extend((0..1u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    refused(&garbage);
    // The first region's header: redb asserts on its format byte.
    let mut flipped = orig.clone();
    flipped[4096] ^= 0x40;
    refused(&flipped);
}

#[test]
fn zeroed_or_flipped_data_pages_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = build(dir.path());
    let orig = std::fs::read(dir.path().join(DB_FILE)).expect("read");
    // Every page holding the account's key holds a record (or a stale copy redb freed):
    // damaging a live one must be refused; a stale one may leave a chain that verifies.
    let key = w.account().0;
    let pages: std::collections::BTreeSet<usize> = orig
        .windows(key.len())
        .enumerate()
        .filter(|(_, win)| *win == key)
        .map(|(at, _)| at / 4096)
        .collect();
    assert!(!pages.is_empty());
    let mut caught = 0;
    for page in pages {
        for zero in [true, false] {
            let mut bytes = orig.clone();
            let range = page * 4096..(page + 1) * 4096;
            if zero {
                bytes[range].fill(0);
            } else {
                bytes[range.start + 2048] ^= 1;
            }
            let (d, path) = with_db(&bytes);
            match verify(d.path()) {
                Ok(_) => {
                    Chain::open(d.path(), None).expect("a verified chain opens");
                }
                Err(e) => {
                    assert!(matches!(e, LedgerError::Damaged { .. }), "{e}");
                    assert!(Chain::open(d.path(), None).is_err(), "run refuses it too");
                    assert_eq!(std::fs::read(&path).expect("read"), bytes);
                    caught += 1;
                }
            }
        }
    }
    assert!(caught > 0, "damage to live pages is found");
}

#[test]
fn an_empty_foreign_or_non_ledger_file_is_not_a_new_chain() {
    let errors = refused(&[]);
    assert!(errors.iter().all(|e| *damage_of(e) == Damage::Empty));
    let errors = refused(&b"not a database at all ".repeat(200));
    assert!(errors.iter().all(|e| *damage_of(e) == Damage::Foreign));
    // A redb file of someone else's: no genesis record.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(DB_FILE);
    {
        let db = redb_file(&path);
        drop(db);
    }
    let bytes = std::fs::read(&path).expect("read");
    let errors = refused(&bytes);
    assert!(errors.iter().all(|e| *damage_of(e) == Damage::NoLedger));
}

/// A redb file with one unrelated table.
fn redb_file(path: &Path) -> redb::Database {
    let db = redb::Database::create(path).expect("create");
    let tx = db.begin_write().expect("tx");
    {
        let def: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("other");
        tx.open_table(def)
            .expect("table")
            .insert(1, 2)
            .expect("insert");
    }
    tx.commit().expect("commit");
    db
}

#[test]
fn verify_never_writes_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path());
    let path = dir.path().join(DB_FILE);
    let before = std::fs::read(&path).expect("read");
    let modified = std::fs::metadata(&path)
        .expect("meta")
        .modified()
        .expect("mtime");
    verify(dir.path()).expect("verifies");
    assert_eq!(std::fs::read(&path).expect("read"), before);
    assert_eq!(
        std::fs::metadata(&path)
            .expect("meta")
            .modified()
            .expect("mtime"),
        modified
    );
    // While a node holds the file, verify says so instead of reading a moving file.
    let chain = Chain::open(dir.path(), None).expect("open");
    let err = verify(dir.path()).expect_err("in use");
    assert_eq!(*damage_of(&err), Damage::InUse, "{err}");
    drop(chain);
}

#[test]
fn a_head_whose_state_root_does_not_match_its_state_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    build(dir.path());
    {
        let store = Store::open(dir.path()).expect("store");
        let head = store.head().expect("head");
        let block = store.block(head).expect("read").expect("block");
        let receipts = store.receipts(head).expect("read").expect("receipts");
        let mut state = store.state().expect("state");
        state.epochs += 1;
        store.commit(&block, &receipts, &state).expect("rewrite");
    }
    let err = Chain::open(dir.path(), None)
        .map(|_| ())
        .expect_err("refused");
    assert!(matches!(damage_of(&err), Damage::Inconsistent(_)), "{err}");
    assert!(err.to_string().contains(DB_FILE), "{err}");
}
