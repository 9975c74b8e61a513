//! The out-of-memory panic of masstree built without its `alloc` feature:
//! an infallible write, or a cursor whose buffer cannot grow, panics with a
//! message that names `Tree::fallible` (see Cargo.toml). Tests only.
//!
//! Each test fails if the panic is missing (`catch_unwind` returns `Ok`),
//! if its message does not name `Tree::fallible`, or if masstree was built
//! with `alloc` after all: then `handle_alloc_error` aborts the process.

#[cfg(test)]
mod tests {
    use core::alloc::Layout;
    use core::ptr::NonNull;
    use std::alloc::{GlobalAlloc, System};
    use std::any::Any;
    use std::panic::{self, AssertUnwindSafe};
    use std::sync::atomic::{AtomicBool, Ordering};

    use masstree::alloc_backends::pool::PoolBackend;
    use masstree::allocator_api2::alloc::{AllocError, Allocator};
    use masstree::{InlineMassTree, Seek, Tree};

    /// The system allocator, refusing every request while `refuse` is set.
    #[derive(Default)]
    struct Refusing {
        refuse: AtomicBool,
    }

    impl Refusing {
        fn refuse(&self, refuse: bool) {
            // Relaxed: the tests set it and allocate on the same thread.
            self.refuse.store(refuse, Ordering::Relaxed);
        }
    }

    // SAFETY: blocks come from `System` with the caller's layout and go back
    // to it with the same layout; a refusal hands out nothing.
    unsafe impl Allocator for Refusing {
        fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
            // Relaxed: as in `refuse`.
            if self.refuse.load(Ordering::Relaxed) || layout.size() == 0 {
                return Err(AllocError);
            }
            // SAFETY: a layout of non-zero size.
            let p = NonNull::new(unsafe { System.alloc(layout) }).ok_or(AllocError)?;
            Ok(NonNull::slice_from_raw_parts(p, layout.size()))
        }

        unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
            // SAFETY: the caller's guarantees: a block from `allocate`, so
            // from `System` with this layout.
            unsafe { System.dealloc(ptr.as_ptr(), layout) }
        }
    }

    type Pool<'a> = InlineMassTree<u64, PoolBackend<&'a Refusing>>;

    /// The panic's message (a `panic!` with or without arguments).
    fn message(payload: Box<dyn Any + Send>) -> String {
        match payload.downcast::<&'static str>() {
            Ok(s) => (*s).to_string(),
            Err(payload) => *payload
                .downcast::<String>()
                .expect("a panic message that is a string"),
        }
    }

    /// Runs `f`, which must panic, and checks that the message names the
    /// fallible API.
    fn assert_panics_naming_fallible<R>(what: &str, f: impl FnOnce() -> R) {
        let Err(payload) = panic::catch_unwind(AssertUnwindSafe(f)) else {
            panic!("{what}: out of memory did not panic");
        };
        let msg = message(payload);
        assert!(
            msg.contains("Tree::fallible") && msg.contains("out of memory"),
            "{what}: the panic does not name Tree::fallible: {msg:?}"
        );
    }

    /// The first insert needs the root leaf, hence a slab: refused, the
    /// fallible form hands the value back and the infallible one panics;
    /// once memory is there again the tree works.
    #[test]
    fn an_infallible_insert_panics_naming_fallible() {
        let a = Refusing::default();
        let tree: Pool<'_> = Tree::new_in(PoolBackend::new_in(&a));
        let g = tree.guard();
        a.refuse(true);
        let refused = tree.fallible().insert(b"k", 7, &g).unwrap_err();
        assert_eq!(refused.into_value(), 7, "the value comes back");
        assert_panics_naming_fallible("insert", || tree.insert(b"k", 7, &g));
        assert!(tree.is_empty());
        a.refuse(false);
        assert_eq!(tree.insert(b"k", 8, &g), None);
        assert_eq!(tree.get(b"k", &g), Some(8));
    }

    /// A cursor's buffers come from the backend's allocator: refused, its
    /// first seek panics the same way; the tree is intact afterwards.
    #[test]
    fn a_cursor_that_cannot_grow_panics_naming_fallible() {
        let a = Refusing::default();
        let tree: Pool<'_> = Tree::new_in(PoolBackend::new_in(&a));
        let g = tree.guard();
        for i in 0..100u64 {
            tree.insert(&i.to_be_bytes(), i, &g);
        }
        a.refuse(true);
        assert_panics_naming_fallible("cursor seek", || {
            let mut c = tree.cursor(&g);
            c.seek(&7u64.to_be_bytes(), Seek::Ge).map(|(_, v)| v)
        });
        a.refuse(false);
        let mut c = tree.cursor(&g);
        assert_eq!(
            c.seek(&7u64.to_be_bytes(), Seek::Ge).map(|(_, v)| v),
            Some(7)
        );
        let mut n = 1;
        while c.next().is_some() {
            n += 1;
        }
        assert_eq!(n, 93);
    }
}
