#![doc = include_str!("../README.md")]
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(feature = "alloc", test))]
extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

pub mod backend;
mod batch;
mod buf;
mod bulk;
mod counter;
mod drain;
mod entry;
mod fallible;
mod get;
mod insert;
mod internode;
mod iter;
mod key;
#[cfg(feature = "alloc")]
mod key_buf;
#[cfg(feature = "alloc")]
pub mod keycode;
mod leaf;
mod leaflink;
mod locate;
mod node;
mod nodeversion;
mod permuter;
mod raw;
mod remove;
mod scan;
#[cfg(feature = "serde")]
mod serialize;
mod split;
mod suffix;
mod sync;
mod traits;
mod tree;
#[cfg(feature = "alloc")]
mod typed;
mod update;
mod value;

#[cfg(all(test, masstree_loom))]
mod loom_tests;
#[cfg(test)]
#[path = "../tests/common/alloc.rs"]
mod test_alloc;
#[cfg(test)]
mod test_backend;
#[cfg(all(test, not(masstree_loom)))]
mod tree_tests;

#[path = "../alloc_backends/mod.rs"]
pub mod alloc_backends;

#[cfg(feature = "seize")]
pub use alloc_backends::seize::OwnedGuard;
pub use allocator_api2;
pub use bulk::{BulkLoadError, BulkLoader};
#[cfg(feature = "alloc")]
pub use drain::IntoIter;
pub use entry::{Entry, Keep};
pub use fallible::{AllocFailed, Fallible};
#[cfg(feature = "alloc")]
pub use iter::Range;
pub use iter::{Cursor, KeyRange, Seek};
#[cfg(feature = "alloc")]
pub use key_buf::KeyBuf;
#[cfg(feature = "serde")]
pub use serialize::TreeSeed;
pub use tree::Tree;
#[cfg(feature = "alloc")]
pub use typed::{KeyBound, KeyRange as TypedKeyRange, TypedMassTree, TypedRange, TypedTree};
pub use update::{Change, CompareExchangeError, Exchanged};
pub use value::{Inline, InlineValue, OutOfLine, ValueStorage};

/// The read guard of a tree on backend `A`, what [`Tree::guard`] returns,
/// named without the backend trait (for helpers that take one).
///
/// ```
/// use masstree::{Guard, InlineMassTree};
/// fn total(tree: &InlineMassTree<u64>, keys: &[&str], g: &Guard<'_>) -> u64 {
///     keys.iter().filter_map(|k| tree.get(k, g)).sum()
/// }
/// let tree = InlineMassTree::new();
/// let g = tree.guard();
/// tree.insert("a", 1, &g);
/// tree.insert("b", 2, &g);
/// assert_eq!(total(&tree, &["a", "b", "c"], &g), 3);
/// ```
#[cfg(feature = "seize")]
pub type Guard<'a, A = alloc_backends::seize::SeizeBackend> =
    <A as backend::NodeAllocatorGeneric>::Guard<'a>;
/// The read guard of a tree on backend `A`, what [`Tree::guard`] returns,
/// named without the backend trait (for helpers that take one).
#[cfg(not(feature = "seize"))]
pub type Guard<'a, A> = <A as backend::NodeAllocatorGeneric>::Guard<'a>;

/// A Masstree whose values (of any type) are stored out of line; lookups
/// return `&'g V`. The default backend is [`alloc_backends::seize::SeizeBackend`].
#[cfg(feature = "seize")]
pub type MassTree<V, A = alloc_backends::seize::SeizeBackend> = Tree<OutOfLine<V>, A>;
/// A Masstree whose values (of any type) are stored out of line; lookups
/// return `&'g V`.
#[cfg(not(feature = "seize"))]
pub type MassTree<V, A> = Tree<OutOfLine<V>, A>;

/// A Masstree whose word-sized `Copy` values live in the leaf slots: no
/// allocation per value, lookups return a copy.
#[cfg(feature = "seize")]
pub type InlineMassTree<V, A = alloc_backends::seize::SeizeBackend> = Tree<Inline<V>, A>;
/// A Masstree whose word-sized `Copy` values live in the leaf slots: no
/// allocation per value, lookups return a copy.
#[cfg(not(feature = "seize"))]
pub type InlineMassTree<V, A> = Tree<Inline<V>, A>;

#[cfg(feature = "seize")]
impl<S: ValueStorage> Tree<S, alloc_backends::seize::SeizeBackend> {
    /// An empty tree on the [`seize`](alloc_backends::seize) backend with the
    /// global allocator.
    pub fn new() -> Self {
        Self::new_in(alloc_backends::seize::SeizeBackend::new())
    }
}
