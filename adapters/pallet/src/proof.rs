//! The storage proof of the epoch: the bytes a block's proof-of-validity carries for it (every
//! trie node its reads touch), measured on the mock runtime by recording the epoch's reads
//! over a committed state of `n` nodes with `k` entries per weights and bonds row. The size is
//! a property of the storage layout, not of the build or the machine. Run by hand:
//!
//! ```text
//! cargo test --features std -- --ignored --nocapture measure_epoch_proof
//! ```

use deepnode_consensus::Fx;
use deepnode_types::NeuronStats;
use frame_support::BoundedVec;
use parity_scale_codec::Encode;

use crate::mock::{DeepNode, Rules, System, Test, new_test_ext};
use crate::{BondEntries, Bonds, Neuron, Neurons, NodeCount, WeightEntries, Weights};

/// The encoded size of the epoch's storage proof with `n` nodes of `k` entries per row.
fn epoch_proof_bytes(n: u32, k: u32) -> usize {
    let rules = Rules {
        max_nodes: n,
        max_weights_len: k,
        endowments: Vec::new(),
        ..Rules::default()
    };
    let mut ext = new_test_ext(&rules);
    ext.execute_with(|| {
        for uid in 0..n {
            let others = (1..=k).map(|d| (uid + d) % n);
            let neuron = Neuron {
                owner: u64::from(uid) + 100,
                stake: 1_000,
                registered_at: 1,
                weights_block: Some(1),
                endpoint: BoundedVec::truncate_from(b"10.0.0.1:7000".to_vec()),
                modality: 1,
                last: NeuronStats::default(),
            };
            Neurons::<Test>::insert(uid, neuron);
            Weights::<Test>::insert(
                uid,
                BoundedVec::truncate_from(others.clone().map(|j| (j, 1u16)).collect()),
            );
            Bonds::<Test>::insert(
                uid,
                BoundedVec::truncate_from(others.map(|j| (j, Fx::from_bits(1 << 60))).collect()),
            );
        }
        NodeCount::<Test>::put(n);
        WeightEntries::<Test>::put(n * k);
        BondEntries::<Test>::put(n * k);
        System::set_block_number(2);
    });
    ext.commit_all().expect("the state commits");
    let (epochs, proof) = ext.execute_and_prove(|| {
        DeepNode::run_epoch();
        crate::Epochs::<Test>::get()
    });
    assert_eq!(epochs, 1, "the epoch ran");
    proof.encoded_size()
}

#[test]
#[ignore = "a measurement, run by hand (see the module docs)"]
fn measure_epoch_proof() {
    let k = 64;
    let mut last = 0;
    for n in [64, 128, 256, 512, 1024] {
        let bytes = epoch_proof_bytes(n, k);
        // At least the weights rows it reads: `k` entries of a 4-byte uid and a 2-byte weight.
        assert!(bytes > (n * k * 6) as usize, "{bytes} bytes for n = {n}");
        assert!(bytes > last, "the proof grows with n");
        last = bytes;
        println!(
            "epoch proof n={n} k={k}: {bytes} bytes ({:.0} per node)",
            bytes as f64 / f64::from(n)
        );
    }
}
