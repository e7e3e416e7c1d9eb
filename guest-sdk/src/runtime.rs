//! What std gives a guest, for guests without it: the panic handler, the global allocator
//! and `cabi_realloc`, the export through which the host allocates the guest's arguments
//! and replies (std's wasi-libc provides it otherwise).

use alloc::alloc::{Layout, alloc, realloc};
use alloc::format;
use core::arch::wasm32;
use core::panic::PanicInfo;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, Ordering};

use talc::base::Talc;
use talc::base::binning::Binning;
use talc::cell::TalcSyncCell;
use talc::wasm::WasmBinning;

use crate::reason::ExitReason;

/// Talc over the memory the process starts with, then `memory.grow`. Talc, not dlmalloc
/// (Rust's default on wasm): about 6 KB less code in every guest, which is shipped and
/// compiled with every new module (W5b: the lean hello compiles 1.2 ms faster).
#[global_allocator]
static HEAP: TalcSyncCell<Memory, WasmBinning> = TalcSyncCell::new_wasm(Memory { end: None });

unsafe extern "C" {
    /// Where the linker put the end of static data: the heap may start here.
    static __heap_base: u8;
}

/// Linear memory as Talc's source: one heap from `__heap_base` upwards, extended in pieces
/// that end on a 4 KiB boundary, first into the free tail of the memory the instance
/// starts with (~58 KB in a small guest), then growing the memory as needed. So a process
/// touches only the pages it uses: a small process's heap ends on the page its static
/// data ends on. Most never call `memory.grow`, a call into the host that also costs a
/// TLB flush when the instance's slot is reset. Nothing else in a guest without std grows
/// the memory, so what lies above the heap's end is free.
#[derive(Debug)]
struct Memory {
    /// The heap's end, as Talc last reported it; `None` before the first piece.
    end: Option<NonNull<u8>>,
}

/// Wasm's page size.
const PAGE: usize = 64 << 10;

/// The host's page size: what a process's resident memory is counted in.
const OS_PAGE: usize = 4 << 10;

/// Room for Talc's own bookkeeping in a piece: its bin lists in the first, a chunk's
/// header and tag in any.
const PIECE_OVERHEAD: usize = talc::min_first_heap_size::<WasmBinning>() + 64;

// SAFETY: hands Talc each byte of linear memory above the static data at most once, as one
// heap it only ever extends, and nothing else writes there (no std, no other allocator).
unsafe impl talc::source::Source for Memory {
    fn acquire<B: Binning>(talc: &mut Talc<Self, B>, layout: Layout) -> Result<(), ()> {
        let start = match talc.source.end {
            None => ptr::addr_of!(__heap_base) as usize,
            Some(end) => end.as_ptr() as usize,
        };
        let need = layout.size().checked_add(layout.align() + PIECE_OVERHEAD).ok_or(())?;
        let end = start.checked_add(need).and_then(|e| e.checked_next_multiple_of(OS_PAGE)).ok_or(())?;
        let free = (wasm32::memory_size(0) * PAGE).saturating_sub(start);
        if free < end - start && wasm32::memory_grow(0, (end - start - free).div_ceil(PAGE)) == usize::MAX {
            return Err(());
        }
        // SAFETY: `start..end` lies in linear memory (grown above if needed), above the
        // static data and above every piece handed out before, and is Talc's alone.
        talc.source.end = Some(unsafe {
            match talc.source.end {
                None => talc.claim(start as *mut u8, end - start).ok_or(())?,
                Some(old) => talc.extend(old, end as *mut u8),
            }
        });
        Ok(())
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
