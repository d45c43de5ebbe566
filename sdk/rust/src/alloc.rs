//! The guest's global allocator (feature `allocator`, on by default; wasm only).
//!
//! A stage allocates and frees many small blocks per record (parsed JSON, strings, output
//! buffers). wasi-libc's `malloc` (dlmalloc) pays for splitting, coalescing and bin searches on
//! every one of them. This allocator keeps freed small blocks in per-size free lists and hands them
//! out again, like the thread caches of native allocators: in steady state a small allocation is a
//! list pop and a free is a push. Larger or over-aligned blocks go to the system allocator.
//!
//! Freed small blocks are kept for blocks of the same size class and not returned to the system
//! allocator, so the memory a stage holds is bounded by its peak use of each class.
//!
//! Only for single-threaded wasm (no `atomics` target feature): the free lists are not
//! synchronised. A stage that needs another allocator disables the feature and declares its own.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr;

/// Blocks up to this size are pooled, in classes of `GRAIN` bytes.
const MAX_SMALL: usize = 1024;
const GRAIN: usize = 16;
const CLASSES: usize = MAX_SMALL / GRAIN;

/// Pools small blocks of size class `GRAIN * (i + 1)` in free list `i`; a free block holds the
/// pointer to the next one.
#[derive(Debug)]
pub(crate) struct PoolAlloc {
    free: UnsafeCell<[*mut u8; CLASSES]>,
}

impl PoolAlloc {
    pub(crate) const fn new() -> Self {
        Self {
            free: UnsafeCell::new([ptr::null_mut(); CLASSES]),
        }
    }
}

impl Default for PoolAlloc {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: this target has no threads (no `atomics` feature), so there is never a second thread to
// race on the free lists. Elsewhere the type is not `Sync` and cannot be a global allocator.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl Sync for PoolAlloc {}

/// The free list of a layout, if it is pooled.
fn class(layout: Layout) -> Option<usize> {
    (layout.size() <= MAX_SMALL && layout.align() <= GRAIN)
        .then(|| layout.size().saturating_sub(1) / GRAIN)
}

/// The layout every block of class `c` is allocated with from the system allocator.
fn class_layout(c: usize) -> Layout {
    // GRAIN is a power of two and the size a non-zero multiple of it: always valid.
    Layout::from_size_align(GRAIN * (c + 1), GRAIN).expect("a valid class layout")
}

unsafe impl GlobalAlloc for PoolAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(c) = class(layout) else {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.alloc(layout) };
        };
        // SAFETY: single-threaded (see `Sync`), and no reference to the lists outlives this call.
        let free = unsafe { &mut *self.free.get() };
        let head = free[c];
        if head.is_null() {
            // SAFETY: a class layout has a non-zero size.
            return unsafe { System.alloc(class_layout(c)) };
        }
        // SAFETY: `head` is a free block of this class; its first word is the next free block
        // (blocks are GRAIN-aligned, so the word is aligned).
        free[c] = unsafe { head.cast::<*mut u8>().read() };
        head
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(c) = class(layout) else {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.dealloc(block, layout) };
        };
        // SAFETY: single-threaded (see `Sync`), and no reference to the lists outlives this call.
        let free = unsafe { &mut *self.free.get() };
        // SAFETY: the block was allocated for this class, so it is GRAIN-aligned and at least
        // GRAIN bytes long, and it is ours again.
        unsafe { block.cast::<*mut u8>().write(free[c]) };
        free[c] = block;
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = Layout::from_size_align(new_size, layout.align()).expect("caller's layout");
        match (class(layout), class(new)) {
            // Same class: the block already has room.
            (Some(a), Some(b)) if a == b => block,
            // Both large: let the system allocator grow it in place if it can.
            // SAFETY: forwarded with the caller's guarantees.
            (None, None) => unsafe { System.realloc(block, layout, new_size) },
            _ => {
                // SAFETY: `new` has a non-zero size (the caller's guarantee).
                let moved = unsafe { self.alloc(new) };
                if !moved.is_null() {
                    // SAFETY: both blocks are valid for the smaller of the two sizes, and
                    // distinct.
                    unsafe {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                }
                moved
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_small_blocks_only() {
        let l = |size, align| Layout::from_size_align(size, align).unwrap();
        assert_eq!(class(l(1, 1)), Some(0));
        assert_eq!(class(l(16, 8)), Some(0));
        assert_eq!(class(l(17, 1)), Some(1));
        assert_eq!(class(l(MAX_SMALL, 16)), Some(CLASSES - 1));
        assert_eq!(class(l(MAX_SMALL + 1, 1)), None);
        assert_eq!(class(l(64, 32)), None);
    }

    #[test]
    fn blocks_are_reused_and_grow() {
        let a = PoolAlloc::new();
        let small = Layout::from_size_align(24, 8).unwrap();
        unsafe {
            let p = a.alloc(small);
            a.dealloc(p, small);
            let q = a.alloc(small);
            assert_eq!(p, q, "a freed block is handed out again");
            q.write_bytes(7, 24);
            // Within its class: stays put.
            let q = a.realloc(q, small, 30);
            assert_eq!(p, q);
            // Out of the class, then large: moves, keeping the contents.
            let r = a.realloc(q, Layout::from_size_align(30, 8).unwrap(), 4000);
            assert_eq!(std::slice::from_raw_parts(r, 24), &[7; 24][..]);
            a.dealloc(r, Layout::from_size_align(4000, 8).unwrap());
        }
    }
}
