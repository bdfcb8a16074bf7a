//! Replies of a broken or hostile memcached server: for any bytes, every command's reply
//! parser returns without panicking, never allocates more than the store's value limit
//! allows on the strength of a size the server sent, and never leaves a failed connection
//! to be reused.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use session_memcached::fuzzing::{parse_reply, Failure, COMMANDS};

/// Records the largest single allocation, so the target can check the bound on what a
/// reply makes the client allocate.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

/// Buffers that do not depend on announced sizes: the 8 KiB read and write buffers, reply
/// lines (at most 8 KiB, or the input's length through memcache-async).
const SLACK: usize = 64 * 1024;

// Input: a line `<command> <store value limit>`, then what the server answers. The command
// is one of `COMMANDS` (else picked by the line's first byte), the limit at most 16 MiB.
fuzz_target!(|data: &[u8]| {
    let (header, reply) = match data.iter().position(|b| *b == b'\n') {
        Some(end) => (&data[..end], &data[end + 1..]),
        None => (data, &[][..]),
    };
    let header = String::from_utf8_lossy(header);
    let mut words = header.split(' ');
    let name = words.next().unwrap_or("");
    let command = match COMMANDS.iter().position(|c| *c == name) {
        Some(index) => index as u8,
        None => name.bytes().next().unwrap_or(0),
    };
    let max_value_bytes = words
        .next()
        .and_then(|limit| limit.parse::<usize>().ok())
        .unwrap_or(1_000_000)
        .clamp(1, 16 << 20);

    LARGEST.store(0, Ordering::Relaxed);
    let parsed = parse_reply(command, reply, max_value_bytes);
    let largest = LARGEST.load(Ordering::Relaxed);

    assert!(
        largest <= parsed.value_limit + SLACK.max(reply.len() * 2),
        "{}: allocated {largest} bytes with a value limit of {}",
        parsed.command,
        parsed.value_limit
    );
    match parsed.outcome {
        Ok(Some(length)) => assert!(length <= parsed.value_limit, "{}", parsed.command),
        Ok(None) => {}
        // A stats request carries no data, so an error line is its whole reply.
        Err(Failure::Server) if parsed.command == "stats" => {}
        Err(failure) => assert!(
            !parsed.reusable,
            "{}: connection reusable after {failure:?}",
            parsed.command
        ),
    }
});
