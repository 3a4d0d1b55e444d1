//! Links the consensus, types and wire crates without std, calling the buffer API (no
//! allocation: bounded rows, fixed arrays) and, with the `alloc` feature, the `Vec` API's codecs
//! and the ledger's shared rules (deepnode-rules).
//!
//! Without `alloc` this crate defines no global allocator and never names the `alloc` crate,
//! so the build fails if any dependency links it.
#![no_std]

#[cfg(feature = "alloc")]
extern crate alloc;

use core::panic::PanicInfo;

use deepnode_consensus::{BoundedRow, Fx, Outputs, Params, Scalar, epoch_in_place};

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    loop {}
}

/// One epoch of a 4-node network on the stack (Fx backend); returns the loss bits.
#[unsafe(no_mangle)]
pub extern "C" fn deepnode_check_epoch() -> i128 {
    let params = Params::<Fx>::default();
    let stake = [10u64, 20, 30, 40];
    let weights: [BoundedRow<(u32, u16), 4>; 4] = core::array::from_fn(|i| {
        let mut row = BoundedRow::new();
        let uid = u32::try_from(i).map_or(0, |i| i.wrapping_add(1) % 4);
        let _ = row.push((uid, 1000));
        row
    });
    let mut bonds: [BoundedRow<(u32, Fx), 4>; 4] = core::array::from_fn(|_| BoundedRow::new());
    let (mut r, mut t, mut c, mut inc, mut d, mut s) = (
        [Fx::ZERO; 4],
        [Fx::ZERO; 4],
        [Fx::ZERO; 4],
        [Fx::ZERO; 4],
        [Fx::ZERO; 4],
        [Fx::ZERO; 4],
    );
    let (mut minted, mut new_stake) = ([0u64; 4], [0u64; 4]);
    let out = Outputs {
        rank: &mut r,
        trust: &mut t,
        consensus: &mut c,
        incentive: &mut inc,
        dividends: &mut d,
        minted: &mut minted,
        stake: &mut new_stake,
        scratch: &mut s,
    };
    // Called through an opaque pointer, so the archive keeps the Fx instance of
    // `epoch_in_place` as a symbol of its own (the link check looks for it), however much the
    // optimiser inlines.
    type Epoch = fn(
        &Params<Fx>,
        &[u64],
        &[BoundedRow<(u32, u16), 4>],
        &mut [BoundedRow<(u32, Fx), 4>],
        Outputs<'_, Fx>,
    ) -> Result<Fx, deepnode_consensus::Error>;
    let epoch: Epoch = core::hint::black_box(epoch_in_place);
    match epoch(&params, &stake, &weights, &mut bonds, out) {
        Ok(loss) => loss.to_bits(),
        Err(_) => 0,
    }
}

/// The peer wire's header codec and limits (no allocation on any path).
#[unsafe(no_mangle)]
pub extern "C" fn deepnode_check_wire(bytes: &[u8; deepnode_wire::HEADER_LEN]) -> bool {
    let limits = deepnode_wire::Limits {
        max_payload: 1 << 20,
        max_batch: 8,
        max_seq: 64,
        dim: 32,
        max_features: 16,
        max_image_elems: 192,
    };
    deepnode_wire::Header::decode(bytes).is_ok_and(|h| limits.check(&h).is_ok())
}

/// The scalar's total operations, linked without an allocator.
#[unsafe(no_mangle)]
pub extern "C" fn deepnode_check_scalar() -> bool {
    Fx::ONE > Fx::ZERO.add(Fx::ZERO) && Fx::ONE.saturating_div(Fx::ZERO) == Fx::MAX
}

#[cfg(feature = "alloc")]
mod with_alloc {
    use core::alloc::{GlobalAlloc, Layout};

    use deepnode_consensus::{Fx, Params};
    use parity_scale_codec::{Decode, Encode};

    /// An allocator that never gives memory: the buffer API must not need it.
    struct NoAlloc;

    // SAFETY: returning null is the documented way for an allocator to report failure.
    #[allow(unsafe_code)]
    unsafe impl GlobalAlloc for NoAlloc {
        unsafe fn alloc(&self, _: Layout) -> *mut u8 {
            core::ptr::null_mut()
        }
        unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
    }

    #[global_allocator]
    static ALLOC: NoAlloc = NoAlloc;

    /// Round-trips the params through SCALE (this one allocates; the link is what is checked).
    #[unsafe(no_mangle)]
    pub extern "C" fn deepnode_check_codec() -> bool {
        let params = Params::<Fx>::default();
        let bytes = params.encode();
        Params::<Fx>::decode(&mut &bytes[..]).is_ok_and(|p| p == params)
    }

    /// The ledger's shared rules (deepnode-rules): the uid rule and the weights check.
    #[unsafe(no_mangle)]
    pub extern "C" fn deepnode_check_rules(rank: i128) -> bool {
        let nodes = [deepnode_rules::Candidate {
            uid: 0,
            registered_at: 0,
            rank: Fx::from_bits(rank),
            stake: 1,
        }];
        let slot = deepnode_rules::registration_slot(1, 1, 10, 1, nodes);
        let row = deepnode_rules::check_weights(&Params::default(), 0, &[(0, 1)], 1, 1);
        slot == Ok(deepnode_rules::Slot::Replace(0)) && row.is_ok()
    }
}
