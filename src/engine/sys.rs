//! Every `unsafe` block and raw syscall in ringftp lives here.
//!
//! Three kinds of thing need it:
//! - io_uring operations tokio-uring 0.5 does not offer (splice, openat2,
//!   connect from a pre-bound socket, cancel-by-fd). They are built as raw
//!   SQEs with the `io-uring` crate and submitted on the shard's own ring
//!   through tokio-uring's public `UnsubmittedOneshot`. Each op stores every
//!   fd and buffer the kernel will touch in its "stable data", which
//!   tokio-uring keeps alive until the completion arrives, even when the
//!   future awaiting it was dropped: a cancelled transfer can never make the
//!   kernel read a closed (or, worse, reused) fd number.
//! - process and thread setup: CPU affinity, the fd limit, pipe sizes.
//! - the blocking `openat2(2)` used off the shard thread (listings).
//!
//! Everything exported here is a safe function; callers never write
//! `unsafe` themselves (the crate root denies it).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use io_uring::{cqueue, opcode, types};
use tokio_uring::{OneshotOutputTransform, UnsubmittedOneshot};

/// A shared handle on an fd that an in-flight io_uring op may still use.
pub type FdRef = Rc<dyn AsRawFd>;

fn cqe_result(cqe: &cqueue::Entry) -> io::Result<u32> {
    let res = cqe.result();
    if res < 0 {
        Err(io::Error::from_raw_os_error(-res))
    } else {
        Ok(res as u32)
    }
}

/// Converts a completion into `io::Result<u32>` and drops the stable data
/// (which is what finally releases the fds the op held).
struct PlainResult<D>(std::marker::PhantomData<D>);

impl<D> OneshotOutputTransform for PlainResult<D> {
    type Output = io::Result<u32>;
    type StoredData = D;
    fn transform_oneshot_output(self, _data: D, cqe: cqueue::Entry) -> io::Result<u32> {
        cqe_result(&cqe)
    }
}

fn plain<D: Unpin + 'static>(
    data: D,
    sqe: io_uring::squeue::Entry,
) -> UnsubmittedOneshot<D, PlainResult<D>> {
    UnsubmittedOneshot::new(data, PlainResult(std::marker::PhantomData), sqe)
}

/// `splice(2)` on the shard's ring: moves up to `len` bytes from `fd_in`
/// (at `off_in`, or its current position when `None`) into `fd_out`. One of
/// the two must be a pipe. Returns the bytes moved; 0 means end of input.
pub async fn splice(fd_in: FdRef, off_in: Option<u64>, fd_out: FdRef, len: u32) -> io::Result<u32> {
    let sqe = opcode::Splice::new(
        types::Fd(fd_in.as_raw_fd()),
        // -1 means "no offset": use (and advance) the file position; it is
        // the only legal value for a pipe or a socket.
        off_in.map(|o| o as i64).unwrap_or(-1),
        types::Fd(fd_out.as_raw_fd()),
        -1,
        len,
    )
    .flags(libc::SPLICE_F_MOVE)
    .build();
    plain((fd_in, fd_out), sqe).submit().await
}

/// `splice(2)` into a file at an explicit offset (uploads: pipe -> file).
pub async fn splice_to_offset(
    fd_in: FdRef,
    fd_out: FdRef,
    off_out: u64,
    len: u32,
) -> io::Result<u32> {
    let sqe = opcode::Splice::new(
        types::Fd(fd_in.as_raw_fd()),
        -1,
        types::Fd(fd_out.as_raw_fd()),
        off_out as i64,
        len,
    )
    .flags(libc::SPLICE_F_MOVE)
    .build();
    plain((fd_in, fd_out), sqe).submit().await
}

/// Returns the buffer of a read/write op along with its result.
struct BufResult<D>(std::marker::PhantomData<D>);

/// Stable data of a send or receive: the fd and the buffer the kernel
/// reads from or writes into. `Vec`'s heap block does not move when the
/// `Vec` value itself is moved into the op, so the pointer stays valid.
struct BufData {
    _fd: FdRef,
    buf: Vec<u8>,
}

impl OneshotOutputTransform for BufResult<BufData> {
    type Output = (io::Result<u32>, Vec<u8>);
    type StoredData = BufData;
    fn transform_oneshot_output(self, data: BufData, cqe: cqueue::Entry) -> Self::Output {
        (cqe_result(&cqe), data.buf)
    }
}

fn buf_op(
    fd: FdRef,
    buf: Vec<u8>,
    sqe: io_uring::squeue::Entry,
) -> UnsubmittedOneshot<BufData, BufResult<BufData>> {
    UnsubmittedOneshot::new(
        BufData { _fd: fd, buf },
        BufResult(std::marker::PhantomData),
        sqe,
    )
}

/// `send(2)` of `buf[from..]` on a socket, with MSG_NOSIGNAL. Returns the
/// bytes sent and the buffer.
pub async fn send(fd: FdRef, buf: Vec<u8>, from: usize) -> (io::Result<u32>, Vec<u8>) {
    let from = from.min(buf.len());
    let len = (buf.len() - from).min(u32::MAX as usize) as u32;
    // SAFETY: `from <= buf.len()`, so the pointer is inside (or one past)
    // the allocation; the op owns `buf` until the completion arrives.
    let ptr = unsafe { buf.as_ptr().add(from) };
    let sqe = opcode::Send::new(types::Fd(fd.as_raw_fd()), ptr, len)
        .flags(libc::MSG_NOSIGNAL)
        .build();
    buf_op(fd, buf, sqe).submit().await
}

/// `recv(2)` into the spare capacity of `buf` (after its current length);
/// on success the length grows by the bytes received. 0 means end of stream.
pub async fn recv(fd: FdRef, buf: Vec<u8>) -> (io::Result<u32>, Vec<u8>) {
    read_op(fd, buf, None).await
}

/// `pread(2)` at `offset` into the spare capacity of `buf`, like [`recv`].
pub async fn read_at(fd: FdRef, buf: Vec<u8>, offset: u64) -> (io::Result<u32>, Vec<u8>) {
    read_op(fd, buf, Some(offset)).await
}

async fn read_op(fd: FdRef, mut buf: Vec<u8>, offset: Option<u64>) -> (io::Result<u32>, Vec<u8>) {
    let len = buf.len();
    let spare = (buf.capacity() - len).min(u32::MAX as usize) as u32;
    // SAFETY: `len <= capacity`, so the pointer is inside (or one past) the
    // allocation, and `spare` bytes after it belong to it.
    let ptr = unsafe { buf.as_mut_ptr().add(len) };
    let sqe = match offset {
        Some(off) => opcode::Read::new(types::Fd(fd.as_raw_fd()), ptr, spare)
            .offset(off)
            .build(),
        None => opcode::Recv::new(types::Fd(fd.as_raw_fd()), ptr, spare).build(),
    };
    let (res, mut buf) = buf_op(fd, buf, sqe).submit().await;
    if let Ok(n) = res {
        // SAFETY: the kernel initialised exactly `n <= spare` bytes after
        // the old length.
        unsafe { buf.set_len(len + n as usize) };
    }
    (res, buf)
}

/// `pwrite(2)` of `buf[from..]` at `offset`. Returns the bytes written.
pub async fn write_at(
    fd: FdRef,
    buf: Vec<u8>,
    from: usize,
    offset: u64,
) -> (io::Result<u32>, Vec<u8>) {
    let from = from.min(buf.len());
    let len = (buf.len() - from).min(u32::MAX as usize) as u32;
    // SAFETY: `from <= buf.len()`, so the pointer is inside (or one past)
    // the allocation; the op owns `buf` until the completion arrives.
    let ptr = unsafe { buf.as_ptr().add(from) };
    let sqe = opcode::Write::new(types::Fd(fd.as_raw_fd()), ptr, len)
        .offset(offset)
        .build();
    buf_op(fd, buf, sqe).submit().await
}

/// `accept4(2)` on a listening socket, on the shard's ring. The new socket
/// is close-on-exec; ask it for its peer with `socket2::Socket::peer_addr`.
pub async fn accept(listener: FdRef) -> io::Result<OwnedFd> {
    let sqe = opcode::Accept::new(
        types::Fd(listener.as_raw_fd()),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    )
    .flags(libc::SOCK_CLOEXEC)
    .build();
    let fd = plain(listener, sqe).submit().await?;
    // SAFETY: a successful accept completion is a new fd owned by no one.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Stable data of an openat2 op: the path bytes and the `open_how` the
/// kernel reads when it picks the op up, plus the directory fd.
struct OpenData {
    _dir: FdRef,
    _path: CString,
    _how: Box<types::OpenHow>,
}

/// `openat2(2)` relative to `dir` on the shard's ring. `resolve` takes
/// `RESOLVE_*` flags: the virtual filesystem passes RESOLVE_BENEATH so the
/// kernel, not a string check, keeps every path (symlinks included) under
/// the root, even against a symlink swapped in during the request.
/// `mode` is the permission of a file O_CREAT makes (umask applies).
pub async fn openat2(
    dir: FdRef,
    path: CString,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let how = Box::new(
        types::OpenHow::new()
            .flags((flags | libc::O_CLOEXEC) as u64)
            .mode(if flags & libc::O_CREAT != 0 {
                mode as u64
            } else {
                0
            })
            .resolve(resolve),
    );
    let sqe = opcode::OpenAt2::new(
        types::Fd(dir.as_raw_fd()),
        path.as_ptr(),
        &*how as *const types::OpenHow,
    )
    .build();
    let fd = plain(
        OpenData {
            _dir: dir,
            _path: path,
            _how: how,
        },
        sqe,
    )
    .submit()
    .await?;
    // SAFETY: a successful openat2 completion is a new fd that nothing else
    // owns; wrapping it transfers ownership exactly once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Stable data of the *at ops: the directory fds and the names.
struct AtData {
    _dirs: (FdRef, Option<FdRef>),
    _names: (CString, Option<CString>),
}

/// Submits a one-directory, one-name *at op and waits for it.
async fn at_op(dir: FdRef, name: CString, sqe: io_uring::squeue::Entry) -> io::Result<()> {
    let data = AtData {
        _dirs: (dir, None),
        _names: (name, None),
    };
    plain(data, sqe).submit().await.map(|_| ())
}

/// `unlinkat(2)` of `name` in `dir` on the shard's ring (`AT_REMOVEDIR` in
/// `flags` removes a directory). The final component is never followed.
pub async fn unlinkat(dir: FdRef, name: CString, flags: i32) -> io::Result<()> {
    let sqe = opcode::UnlinkAt::new(types::Fd(dir.as_raw_fd()), name.as_ptr())
        .flags(flags)
        .build();
    at_op(dir, name, sqe).await
}

/// `mkdirat(2)` on the shard's ring.
pub async fn mkdirat(dir: FdRef, name: CString, mode: u32) -> io::Result<()> {
    let sqe = opcode::MkDirAt::new(types::Fd(dir.as_raw_fd()), name.as_ptr())
        .mode(mode)
        .build();
    at_op(dir, name, sqe).await
}

/// `renameat2(2)` on the shard's ring (`flags`: 0 or RENAME_NOREPLACE).
/// Both names are single components of their directories; a symlink is
/// renamed as itself, never followed.
pub async fn renameat(
    old_dir: FdRef,
    old: CString,
    new_dir: FdRef,
    new: CString,
    flags: u32,
) -> io::Result<()> {
    let sqe = opcode::RenameAt::new(
        types::Fd(old_dir.as_raw_fd()),
        old.as_ptr(),
        types::Fd(new_dir.as_raw_fd()),
        new.as_ptr(),
    )
    .flags(flags)
    .build();
    plain(
        AtData {
            _dirs: (old_dir, Some(new_dir)),
            _names: (old, Some(new)),
        },
        sqe,
    )
    .submit()
    .await
    .map(|_| ())
}

/// The blocking `openat2(2)` syscall, for code that already runs off the
/// shard thread (directory listings on the blocking pool).
pub fn openat2_blocking(
    dir: RawFd,
    path: &CString,
    flags: i32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    // SAFETY: open_how is plain data; all-zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    // SAFETY: `path` is a valid NUL-terminated string and `how` a valid
    // open_how of the size we pass; both outlive the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the syscall returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

struct ConnectData {
    _sock: FdRef,
    _addr: Box<socket2::SockAddr>,
}

/// `connect(2)` of an already created (and possibly bound) socket on the
/// shard's ring. Used for active-mode data channels, where the socket may
/// need binding to port L-1 before it connects.
pub async fn connect(sock: FdRef, addr: SocketAddr) -> io::Result<()> {
    let addr = Box::new(socket2::SockAddr::from(addr));
    let sqe = opcode::Connect::new(types::Fd(sock.as_raw_fd()), addr.as_ptr(), addr.len()).build();
    plain(
        ConnectData {
            _sock: sock,
            _addr: addr,
        },
        sqe,
    )
    .submit()
    .await
    .map(|_| ())
}

/// Cancels every io_uring request in flight on `fd` (a connect that will
/// never finish, a splice stuck on a dead peer). Returns how many were
/// cancelled; ENOENT (nothing in flight) counts as zero.
pub async fn cancel_fd(fd: FdRef) -> io::Result<u32> {
    let sqe = opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(fd.as_raw_fd())).all())
        .build();
    match plain(fd, sqe).submit().await {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(0),
        other => other,
    }
}

/// One kernel pipe: the staging buffer of a splice transfer.
///
/// An op on either end keeps *both* ends open until it completes. This
/// matters: a splice from the pipe into a full socket holds the pipe's
/// lock while it waits, and close(2) of the other end takes that lock, so
/// closing it while the splice is stuck would block the shard thread. With
/// both ends held by every op, the pipe closes only after the last op has
/// finished (the socket is shut down first, which ends a stuck splice).
pub struct Pipe {
    pair: Rc<PipePair>,
    /// Bytes the pipe holds when full (what F_SETPIPE_SZ granted).
    pub capacity: u32,
}

struct PipePair {
    read: OwnedFd,
    write: OwnedFd,
}

/// One end of a [`Pipe`], usable as an op's fd; it holds the whole pipe.
struct PipeEnd {
    pair: Rc<PipePair>,
    write: bool,
}

impl AsRawFd for PipeEnd {
    fn as_raw_fd(&self) -> RawFd {
        if self.write {
            self.pair.write.as_raw_fd()
        } else {
            self.pair.read.as_raw_fd()
        }
    }
}

impl Pipe {
    /// A new pipe sized to `want` bytes if the kernel allows it. When
    /// F_SETPIPE_SZ is refused (pipe-max-size, or an unprivileged user past
    /// pipe-user-pages-soft) the pipe keeps the size it has and transfers
    /// just use smaller chunks.
    pub fn new(want: u32) -> io::Result<Pipe> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both fds are new and owned by us.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl on an fd we own, with integer arguments only.
        let set =
            unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, want as libc::c_int) };
        let capacity = if set > 0 {
            set as u32
        } else {
            // SAFETY: as above.
            let got = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
            if got <= 0 {
                return Err(io::Error::last_os_error());
            }
            got as u32
        };
        Ok(Pipe {
            pair: Rc::new(PipePair { read, write }),
            capacity,
        })
    }

    /// The read end, for an op (which then holds the whole pipe).
    pub fn read_end(&self) -> FdRef {
        Rc::new(PipeEnd {
            pair: self.pair.clone(),
            write: false,
        })
    }

    /// The write end, for an op (which then holds the whole pipe).
    pub fn write_end(&self) -> FdRef {
        Rc::new(PipeEnd {
            pair: self.pair.clone(),
            write: true,
        })
    }
}

/// CPUs this process may run on (its affinity mask), in order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set, and
    // sched_getaffinity writes at most size_of::<cpu_set_t>() bytes into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect())
    }
}

/// Pins the calling thread to one CPU.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: as in allowed_cpus; CPU_SET only touches the set we own.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (a server holding
/// thousands of sessions needs it). Returns the new soft limit.
pub fn raise_fd_limit() -> io::Result<u64> {
    // SAFETY: getrlimit/setrlimit read and write the rlimit struct we own.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(lim.rlim_cur as u64)
    }
}

/// Clock ticks a second (`sysconf(_SC_CLK_TCK)`, USER_HZ): the unit of
/// the CPU times in /proc/PID/stat, which the load generator reads to report
/// the server's CPU use.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf takes an integer name and touches no memory of ours.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

/// CPU time (user, system) in microseconds this process has used,
/// including reaped children when `children` is set.
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
    // SAFETY: getrusage fills the struct we own.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut ru);
        ru
    };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (us(ru.ru_utime), us(ru.ru_stime))
}

/// Clears O_NONBLOCK on an fd. Files are opened with O_NONBLOCK so that a
/// FIFO planted in the tree cannot block the open; once the fd is known to
/// be a regular file the flag is dropped so splice reads behave normally.
pub fn clear_nonblock(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl with integer arguments on an fd we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The names in an open directory (without `.` and `..`), in the order the
/// filesystem returns them. Blocking: call it off the shard thread.
pub fn read_dir_names(dir: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    // fdopendir takes ownership of the fd it is given, so give it a dup and
    // keep `dir` usable (and the caller's ownership intact).
    let dup = dir.try_clone()?;
    // SAFETY: `dup` is a valid open directory fd; on success fdopendir owns
    // it (we forget our handle), on failure we still own and drop it.
    let dirp = unsafe { libc::fdopendir(dup.as_raw_fd()) };
    if dirp.is_null() {
        return Err(io::Error::last_os_error());
    }
    std::mem::forget(dup);
    let mut names = Vec::new();
    // SAFETY: fdopendir(3) positions the stream wherever the fd's offset
    // is; rewind so a reused directory fd still lists everything.
    unsafe { libc::rewinddir(dirp) };
    loop {
        // SAFETY: `dirp` is a valid DIR* until closedir below. readdir
        // returns NULL at the end (or on error, which errno tells apart);
        // the dirent it returns stays valid until the next readdir call, and
        // we copy the name out before that.
        unsafe {
            *libc::__errno_location() = 0;
            let ent = libc::readdir(dirp);
            if ent.is_null() {
                let err = *libc::__errno_location();
                libc::closedir(dirp);
                if err != 0 {
                    return Err(io::Error::from_raw_os_error(err));
                }
                return Ok(names);
            }
            let name = std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()).to_bytes();
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
        }
    }
}

/// `fstatat(2)` of `name` inside the directory `dir`, not following a final
/// symlink when `nofollow`. Blocking: call it off the shard thread.
pub fn fstatat(dir: &OwnedFd, name: &CString, nofollow: bool) -> io::Result<libc::stat> {
    let flags = if nofollow {
        libc::AT_SYMLINK_NOFOLLOW
    } else {
        0
    };
    // SAFETY: `st` is plain data that fstatat fills; `name` is NUL-terminated.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstatat(dir.as_raw_fd(), name.as_ptr(), &mut st, flags) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(st)
    }
}

/// `readlinkat(2)`: the target text of the symlink `name` in `dir`.
pub fn readlinkat(dir: &OwnedFd, name: &CString) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: `buf` has `buf.len()` writable bytes; `name` is NUL-terminated.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// Bytes the peer has acknowledged and bytes received on a TCP socket
/// (TCP_INFO), used to tell a slow data connection from a dead one.
pub fn tcp_progress(fd: RawFd) -> io::Result<(u64, u64)> {
    // SAFETY: tcp_info is plain data; getsockopt writes at most `len` bytes
    // into it and we pass its true size.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        if libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok((info.tcpi_bytes_acked, info.tcpi_bytes_received))
    }
}

/// `write(2)` of all of `buf` at the file's position (an O_APPEND file:
/// the end), on the shard's ring. For the transfer log.
pub async fn write_append(fd: FdRef, buf: Vec<u8>) -> io::Result<()> {
    let len = buf.len().min(u32::MAX as usize) as u32;
    // u64::MAX is the -1 offset: "use the file position", which O_APPEND
    // pins to the end, so concurrent shards never overwrite each other.
    let sqe = opcode::Write::new(types::Fd(fd.as_raw_fd()), buf.as_ptr(), len)
        .offset(u64::MAX)
        .build();
    let (res, _) = buf_op(fd, buf, sqe).submit().await;
    res.map(|_| ())
}

/// Sends all of `buf` on a socket (a loop of [`send`]).
pub async fn send_all(fd: FdRef, buf: Vec<u8>) -> io::Result<()> {
    let mut from = 0;
    let mut buf = buf;
    while from < buf.len() {
        let (res, b) = send(fd.clone(), buf, from).await;
        buf = b;
        match res? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => from += n as usize,
        }
    }
    Ok(())
}

/// Plain blocking `sendfile(2)`: the single-stream ceiling that the
/// benchmarks compare the io_uring splice path against. Not used by the
/// server.
pub fn sendfile_blocking(
    out: RawFd,
    file: RawFd,
    offset: &mut i64,
    count: usize,
) -> io::Result<usize> {
    // SAFETY: both fds are open for the duration of the call (the caller
    // holds them) and `offset` is a valid, exclusive i64.
    let n = unsafe { libc::sendfile(out, file, offset as *mut i64, count) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Waits on the shard's ring until `fd` is readable (or has hung up). The
/// op holds no buffer, so an idle control connection costs no read buffer,
/// and dropping the wait loses no data.
pub async fn poll_readable(fd: FdRef) -> io::Result<()> {
    let sqe = opcode::PollAdd::new(
        types::Fd(fd.as_raw_fd()),
        (libc::POLLIN | libc::POLLRDHUP | libc::POLLERR | libc::POLLHUP) as u32,
    )
    .build();
    plain(fd, sqe).submit().await.map(|_| ())
}

/// Waits on the shard's ring until socket `fd` has room to send (or has
/// failed: the next send reports why).
pub async fn poll_writable(fd: FdRef) -> io::Result<()> {
    let sqe = opcode::PollAdd::new(
        types::Fd(fd.as_raw_fd()),
        (libc::POLLOUT | libc::POLLERR | libc::POLLHUP) as u32,
    )
    .build();
    plain(fd, sqe).submit().await.map(|_| ())
}

/// Sets O_NONBLOCK on `fd`, so sends on this thread never block.
pub fn set_nonblock(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd the caller holds open, integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `sendfile(2)` of up to `count` bytes of `file` from `*offset` into a
/// non-blocking socket, on this thread; `*offset` advances by what was
/// sent. WouldBlock when the socket has no room; 0 at end of file. Call it
/// only for a range [`page_cache_holds`] found resident, or it may block
/// the thread on a disk read.
pub fn sendfile_now(sock: RawFd, file: RawFd, offset: &mut u64, count: usize) -> io::Result<usize> {
    let mut off = *offset as libc::off_t;
    // SAFETY: both fds are open for the call (the caller holds them), and
    // `off` is a valid, exclusive off_t the kernel updates.
    let n = unsafe { libc::sendfile(sock, file, &mut off, count) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    *offset = off as u64;
    Ok(n as usize)
}

/// `splice(2)` from a pipe into a non-blocking socket, on this thread:
/// WouldBlock when the socket has no room.
pub fn splice_to_socket_now(pipe: RawFd, sock: RawFd, len: u32) -> io::Result<u32> {
    // SAFETY: both fds are open for the call (the caller holds them); null
    // offsets are the only legal ones for a pipe and a socket.
    let n = unsafe {
        libc::splice(
            pipe,
            std::ptr::null_mut(),
            sock,
            std::ptr::null_mut(),
            len as usize,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as u32)
}

/// Whether every page of `file`'s bytes `[offset, offset + len)` is in the
/// page cache right now, by `cachestat(2)` (Linux 6.5). False where the
/// kernel lacks it (then asked no more) or the file type does not support
/// it: the caller then reads through io_uring, which never blocks the
/// thread.
pub fn page_cache_holds(file: RawFd, offset: u64, len: u64) -> bool {
    use std::sync::atomic::{AtomicBool, Ordering};
    static UNSUPPORTED: AtomicBool = AtomicBool::new(false);
    if len == 0 {
        return true;
    }
    if UNSUPPORTED.load(Ordering::Relaxed) {
        return false;
    }
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    // cachestat(2) is 451 on every architecture Linux numbers alike (all
    // but alpha); the libc crate does not name it for x86_64 yet.
    const SYS_CACHESTAT: libc::c_long = 451;
    // Asked once: this runs for every chunk of every download.
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let page = *PAGE.get_or_init(|| {
        // SAFETY: sysconf takes an integer and touches no memory of ours.
        match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
            n if n > 0 => n as u64,
            _ => 4096,
        }
    });
    let first = offset / page;
    let pages = (offset + len - 1) / page - first + 1;
    let range = Range {
        off: first * page,
        len: pages * page,
    };
    let mut stat = Stat::default();
    // SAFETY: cachestat(fd, const struct cachestat_range *, struct
    // cachestat *, flags 0): both structs match the kernel's layout (u64
    // fields, repr(C)) and live across the call; `stat` is exclusively ours.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file,
            &range as *const Range,
            &mut stat as *mut Stat,
            0u32,
        )
    };
    if r < 0 {
        if io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            UNSUPPORTED.store(true, Ordering::Relaxed);
        }
        return false;
    }
    stat.nr_cache >= pages
}

/// `recv(2)` with MSG_DONTWAIT into `buf`: never blocks (WouldBlock when
/// nothing is there). Used after [`poll_readable`], into a shard-wide
/// scratch buffer.
pub fn recv_now(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid, exclusively borrowed slice of `buf.len()`
    // writable bytes for the duration of the call.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// What a MSG_PEEK look at a socket's receive side finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek {
    /// Bytes are waiting.
    Data,
    /// Nothing yet.
    Empty,
    /// The peer closed its side (end of stream) or reset the connection.
    Closed,
}

/// Looks at socket `fd`'s receive side without consuming anything.
pub fn peek(fd: RawFd) -> Peek {
    let mut b = [0u8; 1];
    // SAFETY: `b` is a valid one-byte buffer for the duration of the call.
    let n = unsafe {
        libc::recv(
            fd,
            b.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    match n {
        0 => Peek::Closed,
        n if n > 0 => Peek::Data,
        _ => match io::Error::last_os_error().raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Peek::Empty,
            _ => Peek::Closed,
        },
    }
}
