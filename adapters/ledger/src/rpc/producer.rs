//! The block producer: a thread that produces and commits a block every interval on the
//! shared chain and announces each head to the subscribers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::shared::Shared;
use crate::error::LedgerError;
use crate::view::HeaderView;

/// Wall-clock milliseconds since the Unix epoch (0 before it): the header's informative
/// timestamp, which no state transition reads.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Produces a block every `interval` until `stop` is set (after the block in progress is
/// committed) or a commit fails (returned). Sleeps in slices of at most 50 ms so a stop is
/// seen promptly.
pub(super) fn produce(
    shared: &Shared,
    interval: Duration,
    stop: &AtomicBool,
) -> Result<(), LedgerError> {
    let mut next = Instant::now() + interval;
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(50)));
            continue;
        }
        next += interval;
        // The chain is locked only to seal the block and to install it: submissions wait
        // for neither the encoding and hashing of its state nor the store's commit.
        let sealed = shared.lock().seal_block(now_ms())?;
        let committed = match sealed.commit(shared.store()) {
            Ok(c) => c,
            Err(failed) => {
                let (sealed, e) = *failed;
                shared.lock().abandon(sealed);
                return Err(e);
            }
        };
        let head = HeaderView::from(committed.header());
        shared.publish(committed.header(), committed.state());
        shared.lock().install(committed);
        // No subscriber is not an error.
        let _ = shared.heads.send(head);
    }
    Ok(())
}
