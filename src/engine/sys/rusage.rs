//! `getrusage(2)`, which rustix does not wrap: the CPU time the load
//! generator and the benchmarks report for themselves.

/// CPU time (user, system) in microseconds this process has used,
/// including its reaped children when `children` is set.
pub fn cpu_time_us(children: bool) -> (u64, u64) {
    rusage_us(if children {
        libc::RUSAGE_CHILDREN
    } else {
        libc::RUSAGE_SELF
    })
}

/// CPU time (user, system) in microseconds of the calling thread only.
pub fn thread_cpu_time_us() -> (u64, u64) {
    rusage_us(libc::RUSAGE_THREAD)
}

fn rusage_us(who: libc::c_int) -> (u64, u64) {
    // SAFETY: rusage is plain data (all-zero is valid) and getrusage only
    // fills the struct we own. With a valid `who` it cannot fail.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut ru);
        ru
    };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (us(ru.ru_utime), us(ru.ru_stime))
}
