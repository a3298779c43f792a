//! The accept loops of `ringftp serve`, one set per listener per shard,
//! and where a server says no before the greeting: a client outside the
//! `--allow`/`--deny` list (see [`crate::access`]), or banned by
//! `--login-ban`, gets 421 and is closed (and the log says why); a
//! connection beyond
//! `--max-sessions` or `--max-per-ip` (see [`crate::limits`]) gets 421 and
//! is closed; when the process runs out of file descriptors a waiting
//! client gets 421 through the shard's refusal ring ([`sys::Refuser`],
//! which needs no fd) instead of hanging in the backlog. On an implicit
//! FTPS listener each of these 421s is a fatal TLS alert instead
//! ([`crate::tls::alert`]), which a client that starts with a handshake
//! can read. On SIGTERM/SIGINT
//! the loops close their listeners. With `--proxy-protocol` (see [`crate::proxy_protocol`])
//! a connection must come from `--proxy-from` and start with a PROXY
//! header, else it is closed without a reply; the header's client is then
//! the address every check above uses. An admitted connection becomes a session
//! ([`crate::session::driver::run`]) on the same shard.

use std::net::{Shutdown, SocketAddr};
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use socket2::Socket;

use crate::engine::sys::{self, FdRef};
use crate::limits::Refusal;
use crate::logging::limit::Suppressed;
use crate::metrics::counters::RefusedReason;
use crate::proto::{codes, Reply};
use crate::proxy_protocol;
use crate::session;
use crate::shard::{Places, ShardCtx};
use crate::shutdown::{self, Phase};
use crate::tls::alert::{self, Refusal as Alert};

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
                // The kernel takes an fd number before it looks at the
                // backlog, so EMFILE comes back at once whether a client
                // waits or not: wait until one does (a POLL on the listener
                // holds no fd), or this loop would spin for the whole
                // shortage. Then admit it if fds are back, else refuse it
                // with 421 through the shard's refusal ring, which needs no
                // fd of the process's.
                ctx.out_of_fds();
                if ctx.fd_shortage.began() {
                    let (ctx, listener) = (ctx.clone(), listener.clone());
                    tokio_uring::spawn(async move {
                        let stop = ctx.shutdown.clone();
                        ctx.fd_shortage.watch(&*listener, stop).await;
                    });
                }
                if !client_waits(&listener, &mut watch).await {
                    return;
                }
                refuse_short_of_fds(&ctx, &listener, implicit).await;
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

/// Starts a session for an accepted connection.
fn take(ctx: &Rc<ShardCtx>, sock: Socket, implicit: bool) {
    ctx.fd_shortage.accepted();
    let (Some(peer), Some(local)) = (
        sock.peer_addr().ok().and_then(|a| a.as_socket()),
        sock.local_addr().ok().and_then(|a| a.as_socket()),
    ) else {
        return;
    };
    let ends = Ends {
        peer,
        local,
        reached: local,
    };
    match &ctx.config.proxy {
        None => admit(ctx, Rc::new(sock), ends, implicit, Instant::now()),
        Some(_) => proxied(ctx, sock, ends, implicit),
    }
}

/// Once a client is in `listener`'s backlog while the process was out of
/// fds: fds may be back (this loop's ACCEPT failed before the client
/// came), so a plain non-blocking accept comes first and admits the client
/// if it can; if that too meets EMFILE, the client is answered 421 and
/// closed through the shard's refusal ring (see [`sys::Refuser`]).
/// Another of this listener's loops, woken by the same client, may have
/// taken it already: then nothing is done. Without a refusal ring the
/// client waits until fds free up; this loop tries again in 100 ms.
async fn refuse_short_of_fds(ctx: &Rc<ShardCtx>, listener: &Rc<Socket>, implicit: bool) {
    match listener.accept() {
        Ok((sock, _)) => return take(ctx, sock, implicit),
        Err(e) if is_out_of_fds(&e) => {}
        Err(_) => return,
    }
    let Some(refuser) = ctx.fd_shortage.refuser() else {
        tokio::time::sleep(Duration::from_millis(100)).await;
        return;
    };
    // EMFILE says nothing about the backlog (see `accept_loop`).
    if !sys::has_waiting_connection(&**listener) {
        return;
    }
    match refuser.refuse(&**listener, implicit) {
        Ok(true) => {
            ctx.metrics.refused(RefusedReason::OutOfFds);
            ctx.fd_shortage.refused();
        }
        Ok(false) => {}
        Err(e) => {
            tracing::error!(
                shard = ctx.id,
                "the ring that refuses clients when fds run out failed ({e}): new clients will wait instead of getting 421"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A control connection's addresses as the rules see them.
#[derive(Debug, Clone, Copy)]
struct Ends {
    /// The client: the socket's peer, or a PROXY header's source.
    peer: SocketAddr,
    /// The socket's own local address (passive listeners bind on it).
    local: SocketAddr,
    /// The address the client connected to: `local`, or a PROXY header's
    /// destination (the balancer's VIP).
    reached: SocketAddr,
}

/// `--proxy-protocol`: a connection from a balancer in `--proxy-from`
/// must start with a PROXY header, read within `--login-timeout`; the
/// client it names is then admitted as if it had connected itself. Any
/// other connection, or a missing or malformed header, is closed without
/// a reply and logged.
fn proxied(ctx: &Rc<ShardCtx>, sock: Socket, ends: Ends, implicit: bool) {
    let from = ends.peer;
    let trusted = ctx
        .config
        .proxy
        .as_ref()
        .is_some_and(|p| p.trusts(from.ip()));
    if !trusted {
        let why = format!(
            "{} is not in --proxy-from (--proxy-protocol is on)",
            from.ip()
        );
        proxy_refused(ctx, from, why);
        let _ = sock.shutdown(Shutdown::Both);
        return;
    }
    let ctx = ctx.clone();
    tokio_uring::spawn(async move {
        let accepted = Instant::now();
        let sock = Rc::new(sock);
        let mut watch = ctx.shutdown.clone();
        let header = tokio::select! {
            r = proxy_protocol::read_header(&sock, ctx.config.login_timeout) => r,
            _ = shutdown::reached(&mut watch, Phase::Draining) => {
                let _ = sock.shutdown(Shutdown::Both);
                return;
            }
        };
        match header {
            Ok(addrs) => {
                let ends = match addrs {
                    Some(a) => {
                        tracing::debug!(%from, client = %a.client, reached = %a.reached, shard = ctx.id, "PROXY header");
                        Ends {
                            peer: a.client,
                            reached: a.reached,
                            ..ends
                        }
                    }
                    // LOCAL / UNKNOWN (a health check): the balancer
                    // itself is the client.
                    None => ends,
                };
                admit(&ctx, sock, ends, implicit, accepted);
            }
            Err(e) => {
                proxy_refused(&ctx, from, format!("{e} (--proxy-protocol)"));
                let _ = sock.shutdown(Shutdown::Both);
            }
        }
    });
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
                // Greeted, then closed with 421 like every idle session.
                ctx.metrics.refused(RefusedReason::Shutdown);
                take(ctx, Socket::from(fd), implicit);
            }
            None
        }
    }
}

/// Waits until `listener` has a connection in its backlog (or is shut
/// down, or failed: the next accept says which); false once a shutdown
/// has begun, the listener then shut down as [`accept_or_stop`] does.
async fn client_waits(listener: &Rc<Socket>, watch: &mut shutdown::Watch) -> bool {
    tokio::select! {
        _ = sys::poll_readable(listener.clone() as FdRef) => true,
        _ = shutdown::reached(watch, Phase::Draining) => {
            let _ = listener.shutdown(Shutdown::Both);
            false
        }
    }
}

fn is_out_of_fds(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Admits a new connection from `ends.peer` under the access list, the
/// bans and the limits and starts its session, or answers 421 and closes.
fn admit(ctx: &Rc<ShardCtx>, sock: Rc<Socket>, ends: Ends, implicit: bool, accepted: Instant) {
    let peer = ends.peer;
    let live = ctx.live.snapshot();
    let decision = live.access.check(peer.ip());
    if !decision.is_allowed() {
        ctx.metrics.refused(RefusedReason::DenyList);
        log_refused(ctx, peer, decision.reason());
        refuse(
            &sock,
            implicit,
            Alert::AccessDenied,
            "Access denied for your address.",
        );
        return;
    }
    if ctx.bans.is_banned(peer.ip(), Instant::now()) {
        ctx.metrics.refused(RefusedReason::Ban);
        log_refused(ctx, peer, "banned by --login-ban (too many failed logins)");
        refuse(
            &sock,
            implicit,
            Alert::AccessDenied,
            "Too many failed logins from your address; try again later.",
        );
        return;
    }
    drop(live);
    let permit = match ctx.limits.admit(peer.ip()) {
        Ok(p) => p,
        Err(why) => {
            ctx.metrics.refused(match why {
                Refusal::Sessions(_) => RefusedReason::MaxSessions,
                Refusal::PerAddress(_) => RefusedReason::PerIp,
            });
            log_refused(ctx, peer, why.reply_text());
            refuse(&sock, implicit, Alert::Unavailable, &why.reply_text());
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
        session::driver::Endpoints {
            peer,
            local: ends.local,
            reached: ends.reached,
            since: accepted,
        },
        places,
        implicit,
    ));
}

/// Logs a connection refused before the greeting, at most a burst per
/// client address and then one every few seconds (see
/// [`crate::logging::limit`]; the metrics count every one).
fn log_refused(ctx: &ShardCtx, peer: std::net::SocketAddr, why: impl std::fmt::Display) {
    if let Some(n) = ctx.refusal_log.allow(peer.ip(), Instant::now()) {
        tracing::info!(%peer, shard = ctx.id, "refused: {why}{}", Suppressed(n));
    }
}

/// Counts and logs (rate-limited per address, like [`log_refused`]) a
/// connection closed without a reply under `--proxy-protocol`.
fn proxy_refused(ctx: &ShardCtx, from: SocketAddr, why: String) {
    ctx.metrics.refused(RefusedReason::ProxyProtocol);
    if let Some(n) = ctx.refusal_log.allow(from.ip(), Instant::now()) {
        tracing::warn!(%from, shard = ctx.id, "refused: {why}; closed without a reply{}", Suppressed(n));
    }
}

/// Answers 421 with `text` and closes; on an `implicit` FTPS listener the
/// answer is the fatal TLS alert for `why` instead (see
/// [`crate::tls::alert`]). The socket is new, so its send buffer is empty
/// and the non-blocking send never waits (a client that is already gone
/// costs nothing); the FIN follows the reply.
///
/// What the client has already sent (an implicit-FTPS client speaks
/// first: its ClientHello) is dropped before the close, up to 64 KiB
/// and without waiting or copying ([`sys::discard_once`]): a socket
/// closed with unread bytes sends a reset after the reply, and a client
/// that gets the reset before it reads the reply may report the reset
/// instead (Linux hands the reply over first, not every stack does).
fn refuse(sock: &Socket, implicit: bool, why: Alert, text: &str) {
    let bytes = if implicit {
        alert::refusal_record(why).to_vec()
    } else {
        Reply::new(codes::SERVICE_NOT_AVAILABLE, text).to_bytes()
    };
    let _ = sock.send_with_flags(&bytes, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL);
    let _ = sock.shutdown(Shutdown::Write);
    let _ = sys::discard_once(sock);
}
