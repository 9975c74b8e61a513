//! Node allocator backends, each behind its own feature.
//!
//! | backend | feature | reclamation |
//! |---------|---------|-------------|
//! | [`seize::SeizeBackend`] | `seize` (std) | epoch-style, through a [`::seize::Collector`] owned by the tree |

#[cfg(feature = "seize")]
pub mod seize;

/// Allocation with a one-word header in front, holding a pointer back to the
/// allocator, so that deferred reclaimers (plain `fn`s) can find it.
#[cfg(feature = "seize")]
mod header {
    use core::alloc::Layout;

    /// The full layout and the offset of the payload.
    pub(crate) fn with_header<A>(payload: Layout) -> (Layout, usize) {
        let (l, off) = Layout::new::<*const A>()
            .extend(payload)
            .expect("layout overflow");
        (l.pad_to_align(), off)
    }
}
