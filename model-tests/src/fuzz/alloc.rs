//! A counting global allocator, so that the fuzz runner can hold every
//! decoder to a bound on the memory one input may make it allocate.
//!
//! A library cannot install a global allocator for its users; a binary
//! that wants the measurement (the `sim` binary, the fuzz test) installs
//! [`CountingAlloc`] with `#[global_allocator]`. Without it, [`measure`]
//! reports 0 and [`is_installed`] says so.
//!
//! The counters are per thread: decoding one input happens on one thread,
//! and test threads running other targets at the same time must not show
//! up in its figure.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counting the bytes live on each thread and their
/// peak since the last [`measure`] began.
pub struct CountingAlloc;

thread_local! {
    // Const-initialised cells without destructors: reading them never
    // allocates, which an allocator's own bookkeeping must not do.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static SEEN: Cell<bool> = const { Cell::new(false) };
}

fn add(bytes: isize) {
    // `try_with`: a thread being torn down has no counters left; its
    // allocations are not inside any measurement.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + bytes;
        live.set(now);
        let _ = PEAK.try_with(|peak| {
            if now > peak.get() {
                peak.set(now);
            }
        });
    });
    let _ = SEEN.try_with(|seen| seen.set(true));
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; the counting touches only thread-local cells.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        add(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            // A moving realloc briefly holds both blocks; counting only
            // the growth understates that by the old size, which the
            // doubling growth of a Vec keeps under half of the peak.
            add(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Whether [`CountingAlloc`] is this program's global allocator (it has
/// counted anything on this thread). Allocates, so that it knows.
pub fn is_installed() -> bool {
    drop(std::hint::black_box(Box::new(0u64)));
    SEEN.with(Cell::get)
}

/// Runs `f` and returns its result and the peak number of bytes it had
/// allocated at once on this thread, above what was live when it began.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    let peak = PEAK.with(Cell::get);
    (out, (peak - base).max(0) as usize)
}
