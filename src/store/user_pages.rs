//! Deep pages of an unfiltered user listing without a deep OFFSET.
//!
//! `access_user_blocks` counts the users present (tombstones included) in
//! each block of `BLOCK_SPAN` consecutive `seq` values. To find where page N
//! starts, whole blocks are skipped by their counts, less the tombstones a
//! snapshot does not see; only the remainder is stepped over in the index.
//! The snapshot's last block is never skipped by count, since it may hold
//! users created after the snapshot.
//!
//! The tombstones a snapshot does not see (deleted before it) are counted
//! per block in the database, through the index of the account's
//! tombstones, however many a mass deletion left.

use std::collections::BTreeMap;

use super::users::{BLOCK_SPAN, ListingSnapshot};

/// (block, tombstones) of the account `$1` that a snapshot which counted
/// `$2` deletions leaves out, read through the account's tombstone index.
/// `4096` is [`BLOCK_SPAN`].
pub const HIDDEN_PER_BLOCK: &str = "SELECT seq / 4096, COUNT(*) FROM access_users \
     WHERE account_id = $1 AND deleted_at IS NOT NULL AND deleted_no <= $2 GROUP BY seq / 4096";

/// How many more users the account `$1` had at a snapshot (newest `seq`
/// `$2`, deletions counted `$3`) than it has live now: those deleted since,
/// less those created since (a user created and deleted since is in both).
pub const CHANGED_SINCE_SNAPSHOT: &str = "SELECT \
     (SELECT COUNT(*) FROM access_users WHERE account_id = $1 AND deleted_at IS NOT NULL \
       AND deleted_no > $3) \
     - (SELECT COUNT(*) FROM access_users WHERE account_id = $1 AND seq > $2 \
       AND (deleted_at IS NULL OR deleted_no > $3))";

/// Where a listing resumes: the first `seq` to consider, and how many
/// visible users to step over from there.
#[derive(Debug, PartialEq, Eq)]
pub struct Resume {
    pub from_seq: i64,
    pub skip: i64,
}

/// `blocks` are (block, present) in block order, all before the snapshot's
/// last block; `hidden` counts, per block, tombstones the snapshot does not see.
pub fn locate(offset: i64, blocks: &[(i64, i64)], hidden: &BTreeMap<i64, i64>) -> Resume {
    let mut skip = offset;
    let mut from_seq = 0;
    for (block, present) in blocks {
        let visible = present - hidden.get(block).copied().unwrap_or(0);
        if skip < visible {
            break;
        }
        skip -= visible;
        from_seq = (block + 1) * BLOCK_SPAN;
    }
    Resume { from_seq, skip }
}

/// The block of the snapshot's newest user: counts stop before it.
pub fn last_counted_block(snapshot: &ListingSnapshot) -> i64 {
    snapshot.last_seq / BLOCK_SPAN
}

pub fn hidden_per_block(seqs: impl Iterator<Item = i64>) -> BTreeMap<i64, i64> {
    let mut counts = BTreeMap::new();
    for seq in seqs {
        *counts.entry(seq / BLOCK_SPAN).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tombstone_count_uses_the_block_span() {
        assert!(HIDDEN_PER_BLOCK.contains(&format!("seq / {BLOCK_SPAN},")));
    }

    #[test]
    fn skips_whole_blocks_and_steps_over_the_rest() {
        let blocks = [(0, 4000), (1, 4096), (2, 10)];
        assert_eq!(
            locate(0, &blocks, &BTreeMap::new()),
            Resume {
                from_seq: 0,
                skip: 0
            }
        );
        assert_eq!(
            locate(3999, &blocks, &BTreeMap::new()),
            Resume {
                from_seq: 0,
                skip: 3999
            }
        );
        assert_eq!(
            locate(4000, &blocks, &BTreeMap::new()),
            Resume {
                from_seq: BLOCK_SPAN,
                skip: 0
            }
        );
        assert_eq!(
            locate(8100, &blocks, &BTreeMap::new()),
            Resume {
                from_seq: 2 * BLOCK_SPAN,
                skip: 4
            }
        );
        assert_eq!(
            locate(9000, &blocks, &BTreeMap::new()),
            Resume {
                from_seq: 3 * BLOCK_SPAN,
                skip: 894
            }
        );
    }

    #[test]
    fn tombstones_the_snapshot_does_not_see_do_not_count() {
        let blocks = [(0, 100), (1, 100)];
        let hidden = BTreeMap::from([(0, 40)]);
        assert_eq!(
            locate(60, &blocks, &hidden),
            Resume {
                from_seq: BLOCK_SPAN,
                skip: 0
            }
        );
        assert_eq!(
            locate(59, &blocks, &hidden),
            Resume {
                from_seq: 0,
                skip: 59
            }
        );
    }

    #[test]
    fn sparse_blocks_of_an_account_are_skipped_alike() {
        let blocks = [(7, 3), (9, 2)];
        assert_eq!(
            locate(4, &blocks, &BTreeMap::new()),
            Resume {
                from_seq: 8 * BLOCK_SPAN,
                skip: 1
            }
        );
        assert_eq!(
            locate(5, &blocks, &BTreeMap::new()),
            Resume {
                from_seq: 10 * BLOCK_SPAN,
                skip: 0
            }
        );
        assert_eq!(
            locate(3, &blocks, &BTreeMap::new()),
            Resume {
                from_seq: 8 * BLOCK_SPAN,
                skip: 0
            }
        );
    }
}
