//! A tree on [`HugePageSlabs`] under the seize backend: every key kept
//! under concurrent writers, every slot back after removal, every slab
//! back to the inner allocator at drop.
#![cfg(all(feature = "seize", feature = "huge-pages"))]

mod common;

use common::{TestAlloc, scaled, shaped_key};
use masstree::MassTree;
use masstree::alloc_backends::huge_pages::{HugePageSlabs, SLAB_BYTES, SLOT_BYTES};
use masstree::alloc_backends::seize::SeizeBackend;

type Slabs = HugePageSlabs<TestAlloc>;

#[test]
fn huge_page_slabs_keep_every_key_and_give_every_slab_back() {
    let counting = TestAlloc::new();
    let mut tree: MassTree<u64, SeizeBackend<Slabs>> = MassTree::new_in(SeizeBackend::new_in(
        HugePageSlabs::new_in(counting.clone()),
    ));
    let n = scaled(60_000) as u64;
    let threads = 2;
    // Insert from two threads, interleaved ids, every key shape.
    std::thread::scope(|s| {
        for t in 0..threads {
            let tree = &tree;
            s.spawn(move || {
                let g = tree.guard();
                for id in (t..n).step_by(threads as usize) {
                    assert!(tree.insert(&shaped_key(id), id, &g).is_none());
                }
            });
        }
    });
    assert_eq!(tree.len(), n as usize);
    {
        let g = tree.guard();
        for id in 0..n {
            assert_eq!(tree.get(&shaped_key(id), &g), Some(&id), "key {id}");
        }
        let mut expected: Vec<Vec<u8>> = (0..n).map(shaped_key).collect();
        expected.sort();
        let seen: Vec<Vec<u8>> = tree.iter(&g).map(|(k, _)| k.to_vec()).collect();
        assert!(seen == expected, "iteration differs from the sorted keys");
    }
    let st = tree.backend().allocator().stats();
    // Leaves hold about 5-15 keys (the seize backend takes its internodes
    // from slabs of its own, not from here). Slabs fill one at a time, except that
    // threads that find no room at once each take a new slab (the lock is
    // not held while a slab is made): one partial slab per thread at most.
    let per_slab = SLAB_BYTES / SLOT_BYTES - 1;
    assert!(st.slots_in_use > (n as usize) / 16, "{st:?}");
    assert!(
        st.slabs >= 1 && st.slabs <= st.slots_in_use / per_slab + threads as usize,
        "{st:?}"
    );
    if cfg!(target_os = "linux")
        && std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists()
    {
        assert!(
            st.advised >= st.slabs,
            "the kernel has THP but took no advice: {st:?}"
        );
    }
    // Remove from two threads, the other way round.
    std::thread::scope(|s| {
        for t in 0..threads {
            let tree = &tree;
            s.spawn(move || {
                let g = tree.guard();
                for id in ((1 - t)..n).step_by(threads as usize) {
                    assert_eq!(tree.remove(&shaped_key(id), &g), Some(&id));
                }
            });
        }
    });
    assert_eq!(tree.len(), 0);
    tree.reclaim();
    let st = tree.backend().allocator().stats();
    // Layer 0's leftmost leaf stays (and the internodes above it, elsewhere);
    // one empty slab may stay as the spare.
    assert!(st.slots_in_use <= 8, "{st:?}");
    assert!(st.slabs <= 2, "{st:?}");
    drop(tree);
    assert_eq!(counting.live_allocs(), 0);
    assert_eq!(counting.live_bytes(), 0);
}
