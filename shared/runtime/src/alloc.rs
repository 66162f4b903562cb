//! The runtime's global allocator: mimalloc for small blocks, glibc's malloc for the rest.
//!
//! Serving one request allocates and frees some 240 small objects in the host (wasmtime's
//! component calls and resource tables, hyper, `http`), and glibc's malloc spent a tenth of a
//! small download's instructions on them; mimalloc does the same work in about half. But
//! mimalloc keeps the pages of freed blocks in its per-thread segments: with it alone the
//! runtime held 205 MB after the 16-connection 1 MiB download load, over the 200 MB limit,
//! where glibc held 90–110. The bodies' pieces are what it kept: with blocks of 64 KiB and
//! more sent to glibc it still held 172 MB; with 4 KiB and more, 105–111 MB, and the same
//! instructions per request (the per-request objects are all smaller).
//! Rust passes `dealloc` the layout the block was allocated with (or last reallocated to), so
//! the size alone says which allocator owns a block, with nothing stored beside it.

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks of this size and more come from glibc.
const LARGE: usize = 4 * 1024;

pub struct Split;

fn small(size: usize) -> bool {
    size < LARGE
}

unsafe impl GlobalAlloc for Split {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as given.
        unsafe { if small(layout.size()) { mimalloc::MiMalloc.alloc(layout) } else { System.alloc(layout) } }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as given.
        unsafe { if small(layout.size()) { mimalloc::MiMalloc.alloc_zeroed(layout) } else { System.alloc_zeroed(layout) } }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's layout is the one the block was allocated (or last reallocated)
        // with, so its size picks the allocator that gave it.
        unsafe { if small(layout.size()) { mimalloc::MiMalloc.dealloc(ptr, layout) } else { System.dealloc(ptr, layout) } }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: within one allocator the call is forwarded as given; across the threshold the
        // block moves: a new one from the other allocator, the smaller of the two sizes copied,
        // the old one freed with its own layout.
        unsafe {
            match (small(layout.size()), small(new_size)) {
                (true, true) => mimalloc::MiMalloc.realloc(ptr, layout, new_size),
                (false, false) => System.realloc(ptr, layout, new_size),
                _ => vaultx_core::small_blocks::move_block(self, ptr, layout, new_size),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_block_growing_and_shrinking_across_the_threshold_keeps_its_bytes() {
        // The global allocator is `Split` in this test binary too.
        let mut v: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        v.reserve(super::LARGE * 2);
        assert!(v.capacity() >= super::LARGE);
        assert!(v.iter().enumerate().all(|(i, &b)| b == i as u8));
        v.extend(std::iter::repeat_n(7u8, super::LARGE));
        v.truncate(500);
        v.shrink_to_fit();
        assert_eq!(v.len(), 500);
        assert!(v.iter().enumerate().all(|(i, &b)| b == i as u8));
    }
}
