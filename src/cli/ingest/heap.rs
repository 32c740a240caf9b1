//! How a REST worker's heap keeps the memory it frees (glibc only).
//!
//! A REST worker allocates the same big blocks piece after piece: page bodies of ~5 MB
//! and a piece's columns (65 bytes a bar, ~9 MB for a ticker-year), freed once the
//! piece is written. glibc's defaults give much of that back to the OS and spread it
//! over one arena per thread (decode runs on the blocking pool, writes on another
//! thread), so each piece faulted its memory in afresh, 4 KiB at a time. A batch's
//! worker lives a few seconds and writes a dozen pieces; six of them on two cores
//! spent nearly a third of their CPU in the kernel (measured: 415k page faults for
//! 9.3 M bars, against 58k in one worker that did all of it), and held 200-250 MB
//! each. One arena that keeps its top makes each worker fault its memory in once:
//! 157-171k faults, 8-11% less CPU, 134-162 MB each (BENCHMARKS.md, "fourth round").
//! It changes no result, and the peak is what the pieces need, as before.
//!
//! Flat-file workers keep glibc's defaults: their days decode on parallel threads,
//! for which one arena would be a lock.

/// Sets the heap policy above; call before any thread starts. Where it is not glibc,
/// or glibc refuses a setting, the defaults stay (logged at debug level). The effect
/// is measured by the end-to-end bench's many-pages scenario, not by a test: it
/// changes only when memory goes back to the OS.
pub(super) fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    glibc::keep_freed_memory();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    /// Memory at the top of the heap given back only past this (glibc's default
    /// follows the largest freed block, a few MB).
    const TRIM_THRESHOLD: libc::c_int = 512 << 20;
    /// Extra room the heap takes each time it grows, so a piece's columns do not grow
    /// it step by step (room never written is never faulted in).
    const TOP_PAD: libc::c_int = 64 << 20;
    /// Blocks from the heap up to this size rather than `mmap`ed apart (glibc's
    /// largest setting on 64-bit): a body or a column is at most a few MB.
    const MMAP_THRESHOLD: libc::c_int = 32 << 20;

    pub(super) fn keep_freed_memory() {
        for (name, param, value) in [
            ("M_ARENA_MAX", libc::M_ARENA_MAX, 1),
            ("M_MMAP_THRESHOLD", libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            ("M_TRIM_THRESHOLD", libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            ("M_TOP_PAD", libc::M_TOP_PAD, TOP_PAD),
        ] {
            // SAFETY: mallopt only sets allocator parameters, under glibc's own lock;
            // it runs before the worker's runtime starts any thread.
            if unsafe { libc::mallopt(param, value) } != 1 {
                tracing::debug!(setting = name, value, "glibc refused a heap setting");
            }
        }
    }
}
