//! A cache of freed small blocks in front of an allocator, for the guests.
//!
//! A download allocates about 110 small blocks in its component (the request's header names and
//! values the host lowers one by one, strings, the JSON of its log line and audit event) and
//! frees them all before the next request; wasi-libc's dlmalloc spent some 190 instructions on
//! each pair, a fifth of the guest's work. Here a freed block of up to [`SMALL_MAX`] bytes goes
//! on a free list of its size class (16, 32, … 256 bytes) and the next allocation of that class
//! takes it back: a push and a pop. Blocks on the lists are never returned to the allocator
//! beneath, so an instance keeps at most as many as it ever had in use at once (kilobytes for a
//! request); everything larger goes straight through.
//!
//! Not thread-safe: one instance per wasm module, which has one thread. The adapters install
//! it as the global allocator only there (`vaultx-spin`).

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;

/// The largest block kept: larger ones are rare per request and vary in size.
pub const SMALL_MAX: usize = 256;
const GRAIN: usize = 16;
const CLASSES: usize = SMALL_MAX / GRAIN;
/// Every kept block is allocated with this alignment, so any request of at most it may reuse it.
const ALIGN: usize = 8;

pub struct SmallBlocks<A> {
    beneath: A,
    /// The first free block of each class; a free block's first word points to the next.
    free: UnsafeCell<[*mut u8; CLASSES]>,
}

// SAFETY: only on targets without threads, where no two calls can overlap.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
unsafe impl<A: Sync> Sync for SmallBlocks<A> {}

impl<A> SmallBlocks<A> {
    pub const fn new(beneath: A) -> Self {
        Self { beneath, free: UnsafeCell::new([std::ptr::null_mut(); CLASSES]) }
    }
}

/// The class a layout's block belongs to, if it is small enough to keep.
fn class(layout: Layout) -> Option<usize> {
    (layout.size() <= SMALL_MAX && layout.align() <= ALIGN).then(|| layout.size().saturating_sub(1) / GRAIN)
}

fn class_layout(class: usize) -> Layout {
    // Sizes 16..=256 in steps of 16, alignment 8: always valid.
    Layout::from_size_align((class + 1) * GRAIN, ALIGN).expect("a size class's layout")
}

unsafe impl<A: GlobalAlloc> GlobalAlloc for SmallBlocks<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class(layout) else {
            // SAFETY: forwarded as given.
            return unsafe { self.beneath.alloc(layout) };
        };
        // SAFETY: no other call runs at the same time (see `Sync`), and every pointer on a
        // list is a free block of that class, whose first word holds the next one.
        unsafe {
            let free = &mut *self.free.get();
            let block = free[class];
            if block.is_null() {
                return self.beneath.alloc(class_layout(class));
            }
            free[class] = block.cast::<*mut u8>().read();
            block
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(class) = class(layout) else {
            // SAFETY: forwarded as given.
            return unsafe { self.beneath.dealloc(ptr, layout) };
        };
        // SAFETY: `ptr` is a block of this class (allocated by `alloc` for the same layout),
        // at least 16 bytes and 8-aligned, so it can hold the list's next pointer.
        unsafe {
            let free = &mut *self.free.get();
            ptr.cast::<*mut u8>().write(free[class]);
            free[class] = ptr;
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract (`ptr` from this allocator with `layout`, a valid new
        // size); a block whose class does not change stays where it is.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            match (class(layout), class(new_layout)) {
                (Some(old), Some(new)) if old == new => ptr,
                (None, None) => self.beneath.realloc(ptr, layout, new_size),
                _ => move_block(self, ptr, layout, new_size),
            }
        }
    }
}

/// Reallocates by moving: a new block from `allocator`, the smaller of the two sizes copied,
/// the old block freed with its own layout (what `GlobalAlloc::realloc` does by default, for
/// allocators that override it and still need it where a block changes hands: a size class
/// here, the split between two allocators in `vaultx-runtime`).
///
/// # Safety
/// As `GlobalAlloc::realloc`: `ptr` was allocated by `allocator` with `layout`, and `new_size`
/// rounded up to `layout.align()` does not overflow `isize`.
pub unsafe fn move_block<A: GlobalAlloc + ?Sized>(allocator: &A, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
    // SAFETY: the caller's contract; the new block is at least as large as what is copied.
    unsafe {
        let new = allocator.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
        if !new.is_null() {
            std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            allocator.dealloc(ptr, layout);
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn a_freed_small_block_is_the_next_one_of_its_class() {
        let a = SmallBlocks::new(System);
        unsafe {
            let first = a.alloc(layout(20, 8));
            let other_class = a.alloc(layout(40, 8));
            a.dealloc(first, layout(20, 8));
            // Any size of the same class (17..=32) and alignment up to 8 takes it back, last
            // freed first.
            assert_eq!(a.alloc(layout(32, 4)), first);
            let fresh = a.alloc(layout(24, 8));
            assert_ne!(fresh, first);
            assert_ne!(fresh, other_class);
            a.dealloc(fresh, layout(24, 8));
            a.dealloc(first, layout(32, 4));
            assert_eq!(a.alloc(layout(17, 1)), first);
            assert_eq!(a.alloc(layout(30, 2)), fresh);
            for (p, l) in [(first, layout(17, 1)), (fresh, layout(30, 2)), (other_class, layout(40, 8))] {
                a.dealloc(p, l);
            }
        }
    }

    #[test]
    fn large_or_overaligned_blocks_go_straight_through() {
        let a = SmallBlocks::new(System);
        unsafe {
            for l in [layout(SMALL_MAX + 1, 8), layout(64, 64), layout(1 << 20, 16)] {
                let p = a.alloc(l);
                assert!(!p.is_null() && p as usize % l.align() == 0);
                a.dealloc(p, l);
                // Not kept: a small block of any class does not get it.
                let small = a.alloc(layout(16, 8));
                assert_ne!(small, p);
                a.dealloc(small, layout(16, 8));
            }
        }
    }

    #[test]
    fn reallocation_keeps_the_bytes_within_a_class_across_classes_and_to_large() {
        let a = SmallBlocks::new(System);
        unsafe {
            let mut l = layout(3, 1);
            let mut p = a.alloc(l);
            p.copy_from_nonoverlapping(b"abc".as_ptr(), 3);
            for size in [10, 16, 17, 100, 256, 257, 5000, 300, 200, 5] {
                let q = a.realloc(p, l, size);
                assert!(!q.is_null());
                if class(l).is_some() && class(l) == class(layout(size, 1)) {
                    assert_eq!(q, p, "{} -> {size} stays in place", l.size());
                }
                assert_eq!(std::slice::from_raw_parts(q, 3), b"abc", "{} -> {size}", l.size());
                (p, l) = (q, layout(size, 1));
            }
            a.dealloc(p, l);
        }
    }

    #[test]
    fn zeroed_small_blocks_are_zero_even_when_reused() {
        let a = SmallBlocks::new(System);
        unsafe {
            let p = a.alloc(layout(48, 8));
            p.write_bytes(0xAB, 48);
            a.dealloc(p, layout(48, 8));
            let z = a.alloc_zeroed(layout(40, 8));
            assert_eq!(z, p);
            assert!(std::slice::from_raw_parts(z, 40).iter().all(|&b| b == 0));
            a.dealloc(z, layout(40, 8));
        }
    }
}
