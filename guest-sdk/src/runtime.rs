//! What std gives a guest, for guests without it: the panic handler, the global allocator
//! and `cabi_realloc`, the export through which the host allocates the guest's arguments
//! and replies (std's wasi-libc provides it otherwise).

use alloc::alloc::{GlobalAlloc, Layout, alloc, realloc};
use alloc::format;
use core::arch::wasm32;
use core::cell::UnsafeCell;
use core::panic::PanicInfo;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use dlmalloc::Dlmalloc;

use crate::reason::ExitReason;

/// dlmalloc over the memory the process starts with, then `memory.grow`.
#[global_allocator]
static HEAP: Heap = Heap(UnsafeCell::new(heap()));

/// dlmalloc asking the system for what it needs (not 64 KiB at a time): [`Memory`] rounds
/// each piece to a 4 KiB boundary itself.
const fn heap() -> Dlmalloc<Memory> {
    let mut heap = Dlmalloc::new_with_allocator(Memory);
    assert!(heap.set_granularity(64));
    heap
}

/// The global allocator: one dlmalloc, unlocked (see [`crate::local`]: one thread).
struct Heap(UnsafeCell<Dlmalloc<Memory>>);

// SAFETY: built for single-threaded wasm32 only (crate::local), so no two threads ever
// reach the allocator.
unsafe impl Sync for Heap {}

// SAFETY: forwards to dlmalloc, which upholds `GlobalAlloc`'s contract given exclusive
// access, which the one thread has (no allocation re-enters the allocator).
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe { (*self.0.get()).malloc(layout.size(), layout.align()) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: see the impl; `ptr` came from this allocator with `layout`.
        unsafe { (*self.0.get()).free(ptr, layout.size(), layout.align()) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe { (*self.0.get()).calloc(layout.size(), layout.align()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: see the impl; `ptr` came from this allocator with `layout`.
        unsafe { (*self.0.get()).realloc(ptr, layout.size(), layout.align(), new_size) }
    }
}

unsafe extern "C" {
    /// Where the linker put the end of static data: the heap may start here.
    static __heap_base: u8;
}

/// Linear memory as dlmalloc's system: it hands out memory from `__heap_base` upwards, in
/// pieces that end on a 4 KiB boundary, first from the free tail of the memory the instance
/// starts with (~58 KB in a small guest), then growing the memory as needed. So a process
/// touches only the pages it uses: dlmalloc marks the end of each piece, and a small
/// process's first piece ends on the page its static data ends on. Most never call
/// `memory.grow`, a call into the host that also costs a TLB flush when the instance's slot
/// is reset. Nothing else in a guest without std grows the memory, so what lies above the
/// last piece handed out is free.
struct Memory;

/// The end of what [`Memory`] has handed out, 0 before the first piece.
static HANDED_OUT: AtomicUsize = AtomicUsize::new(0);

/// Wasm's page size.
const PAGE: usize = 64 << 10;

/// The host's page size: what a process's resident memory is counted in.
const OS_PAGE: usize = 4 << 10;

// SAFETY: hands out each byte of linear memory above the static data at most once, in
// contiguous pieces, and never takes any back.
unsafe impl dlmalloc::Allocator for Memory {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        let start = match HANDED_OUT.load(Ordering::Relaxed) {
            0 => ptr::addr_of!(__heap_base) as usize,
            end => end,
        };
        let Some(end) = start.checked_add(size).and_then(|e| e.checked_next_multiple_of(OS_PAGE)) else {
            return (ptr::null_mut(), 0, 0);
        };
        let free = (wasm32::memory_size(0) * PAGE).saturating_sub(start);
        if free < end - start && wasm32::memory_grow(0, (end - start - free).div_ceil(PAGE)) == usize::MAX {
            return (ptr::null_mut(), 0, 0);
        }
        HANDED_OUT.store(end, Ordering::Relaxed);
        (start as *mut u8, end - start, 0)
    }

    fn remap(&self, _ptr: *mut u8, _old: usize, _new: usize, _can_move: bool) -> *mut u8 {
        ptr::null_mut()
    }

    fn free_part(&self, _ptr: *mut u8, _old: usize, _new: usize) -> bool {
        false
    }

    fn free(&self, _ptr: *mut u8, _size: usize) -> bool {
        false
    }

    fn can_release_part(&self, _flags: u32) -> bool {
        false
    }

    fn allocates_zeros(&self) -> bool {
        true
    }

    fn page_size(&self) -> usize {
        PAGE
    }
}

/// Set once the process panics, so that a panic while reporting one traps instead.
static PANICKING: AtomicBool = AtomicBool::new(false);

/// Ends the process with reason `panic`, its message and where it happened, as the `std`
/// panic hook does (less the line on stderr, which needs WASI).
#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    if PANICKING.swap(true, Ordering::Relaxed) {
        core::arch::wasm32::unreachable()
    }
    let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
    crate::process::exit(ExitReason::Panic(format!("{}{at}", info.message())))
}

/// The canonical ABI's allocation export: allocates (`old_len == 0`) or grows a block of
/// guest memory for the host to write into.
///
/// # Safety
/// Called by the host only, with the canonical ABI's guarantees: `align` is a power of two,
/// and `old_ptr` is a block of `old_len` bytes this function returned before.
#[unsafe(no_mangle)]
unsafe extern "C" fn cabi_realloc(old_ptr: *mut u8, old_len: usize, align: usize, new_len: usize) -> *mut u8 {
    // SAFETY: the caller's guarantees above are those `alloc` and `realloc` need.
    let block = unsafe {
        if old_len == 0 {
            if new_len == 0 {
                return align as *mut u8;
            }
            alloc(Layout::from_size_align_unchecked(new_len, align))
        } else {
            realloc(old_ptr, Layout::from_size_align_unchecked(old_len, align), new_len)
        }
    };
    if block.is_null() {
        core::arch::wasm32::unreachable()
    }
    block
}

// `memcpy`, `memcmp` and kin: on wasm32-wasip2 they come from wasi-libc, which std links.
// Only the objects that define what the guest uses are linked, and they import nothing.
#[link(name = "c")]
unsafe extern "C" {}
