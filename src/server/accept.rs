//! The accept loops of `ringftp serve`, one set per listener per shard,
//! and where a server says no before the greeting: a client outside the
//! `--allow`/`--deny` list (see [`crate::access`]), or banned by
//! `--login-ban`, gets 421 and is closed (and the log says why); a
//! connection beyond
//! `--max-sessions` or `--max-per-ip` (see [`crate::limits`]) gets 421 and
//! is closed; when the process runs out of file descriptors the shard's
//! reserve fd is let go to accept and refuse the waiting clients with 421
//! instead of leaving them hanging; on SIGTERM/SIGINT the loops close
//! their listeners. An admitted connection becomes a session
//! ([`crate::session::driver::run`]) on the same shard.

use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::Duration;

use socket2::Socket;

use crate::engine::sys::{self, FdRef};
use crate::proto::{codes, Reply};
use crate::session;
use crate::shard::{Places, ShardCtx};
use crate::shutdown::{self, Phase};

/// Connections taken with plain accepts after each ring ACCEPT completes.
const ACCEPT_BATCH: usize = 64;

/// Accepts control connections on one listener until a shutdown begins
/// (several of these run per listener; see ACCEPTS_IN_FLIGHT). On an
/// `implicit` (FTPS) listener every session starts with a TLS handshake.
pub(super) async fn accept_loop(ctx: Rc<ShardCtx>, listener: Rc<Socket>, implicit: bool) {
    let mut watch = ctx.shutdown.clone();
    loop {
        let res = match accept_or_stop(&ctx, &listener, implicit, &mut watch).await {
            Some(r) => r,
            None => return,
        };
        match res {
            Ok(fd) => {
                take(&ctx, Socket::from(fd), implicit);
                // A burst (a login storm) leaves more connections queued:
                // take them now with plain non-blocking accepts (the
                // listener is O_NONBLOCK) instead of one ring round trip
                // each. The ring's ACCEPT waits only when the queue is empty.
                for _ in 0..ACCEPT_BATCH {
                    match listener.accept() {
                        Ok((sock, _)) => take(&ctx, sock, implicit),
                        Err(_) => break,
                    }
                }
            }
            Err(e) if is_out_of_fds(&e) => {
                // The connection stays in the backlog (the kernel looks for
                // a free fd before it dequeues one). Let the reserve fd go:
                // the next ACCEPT (this loop's or another's) takes the
                // client with its slot and, fds still short, answers 421
                // instead of leaving it waiting until fds free up.
                if !ctx.reserve.release() {
                    // No reserve to give: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    ctx.reserve.refill();
                }
            }
            // Another of this listener's accept loops saw the shutdown
            // first and shut the listener down under our ACCEPT.
            Err(_) if *watch.borrow() >= Phase::Draining => return,
            Err(e) => {
                tracing::warn!(shard = ctx.id, "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Starts a session for an accepted connection, or refuses it when the
/// process is short of fds.
fn take(ctx: &Rc<ShardCtx>, sock: Socket, implicit: bool) {
    // Taking the reserve back tells whether a session could have an fd to
    // work with (a file, a data connection).
    if ctx.reserve.refill() {
        ctx.reserve.admitted();
        admit(ctx, sock, implicit);
    } else {
        refuse(sock, "Server out of resources, try again later.");
        ctx.reserve.refused();
        ctx.reserve.refill();
    }
}

/// One io_uring ACCEPT, or `None` once a shutdown has begun: then the
/// listener is shut down, which wakes the pending ACCEPT (EINVAL) and takes
/// the socket out of the SO_REUSEPORT group; connections still in its
/// backlog go to another listener of the group (a `--reuse-port`
/// successor, with net.ipv4.tcp_migrate_req=1) or are reset. A connection
/// the ACCEPT took in that very instant becomes a session like any other:
/// it is greeted, and the drain then treats it as every idle session — so
/// a hand-over refuses no client.
async fn accept_or_stop(
    ctx: &Rc<ShardCtx>,
    listener: &Rc<Socket>,
    implicit: bool,
    watch: &mut shutdown::Watch,
) -> Option<std::io::Result<OwnedFd>> {
    let accept = sys::accept(listener.clone() as FdRef);
    tokio::pin!(accept);
    tokio::select! {
        r = &mut accept => Some(r),
        _ = shutdown::reached(watch, Phase::Draining) => {
            let _ = listener.shutdown(Shutdown::Both);
            if let Ok(fd) = accept.await {
                take(ctx, Socket::from(fd), implicit);
            }
            tracing::debug!(shard = ctx.id, "accept loop stopped");
            None
        }
    }
}

fn is_out_of_fds(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Admits a new connection under the limits and starts its session, or
/// answers 421 and closes it.
fn admit(ctx: &Rc<ShardCtx>, sock: Socket, implicit: bool) {
    let (Some(peer), Some(local)) = (
        sock.peer_addr().ok().and_then(|a| a.as_socket()),
        sock.local_addr().ok().and_then(|a| a.as_socket()),
    ) else {
        return;
    };
    let live = ctx.live.snapshot();
    let decision = live.access.check(peer.ip());
    if !decision.is_allowed() {
        tracing::info!(%peer, shard = ctx.id, "refused: {}", decision.reason());
        refuse(sock, "Access denied for your address.");
        return;
    }
    if ctx.bans.is_banned(peer.ip(), std::time::Instant::now()) {
        tracing::info!(%peer, shard = ctx.id, "refused: banned by --login-ban (too many failed logins)");
        refuse(
            sock,
            "Too many failed logins from your address; try again later.",
        );
        return;
    }
    drop(live);
    let permit = match ctx.limits.admit(peer.ip()) {
        Ok(p) => p,
        Err(why) => {
            tracing::info!(%peer, shard = ctx.id, "refused: {}", why.reply_text());
            refuse(sock, &why.reply_text());
            return;
        }
    };
    // Replies are small and latency-bound.
    let _ = sock.set_nodelay(true);
    // Clients send ABOR with the Telnet Synch as TCP urgent data
    // (Python's ftplib sends the whole line with MSG_OOB); inline
    // it so no byte of the command is lost.
    let _ = sock.set_out_of_band_inline(true);
    // Counted from here, not from when the task first runs, so a shard
    // that starts draining right after this spawn still waits for it. The
    // session holds its places (shard count, limits permit) in its own
    // state, so the task's future holds them once and gives them back
    // when the session ends.
    let places = Places::new(ctx, permit);
    tokio_uring::spawn(session::driver::run(
        ctx.clone(),
        sock,
        peer,
        local,
        places,
        implicit,
    ));
}

/// Answers 421 and closes. The socket is new, so its send buffer is empty
/// and the non-blocking send never waits (a client that is already gone
/// costs nothing); the FIN follows the reply.
fn refuse(sock: Socket, text: &str) {
    let line = Reply::new(codes::SERVICE_NOT_AVAILABLE, text).to_bytes();
    let _ = sock.send_with_flags(&line, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL);
    let _ = sock.shutdown(Shutdown::Write);
}
