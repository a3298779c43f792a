//! The data channel as a session sets it up: PASV/EPSV open a listener on
//! a port from the shard's slice (227/229 reply), PORT/EPRT were checked by
//! the state machine, and [`Conn::open_data`] makes the connection when a
//! transfer needs it — accepting on the listener (only from the control
//! peer, RFC 2577) or connecting out (optionally from port L-1).

use std::future::Future;
use std::net::SocketAddrV4;

use super::{Conn, Flow, Loud};
use crate::data::announce;
use crate::data::passive::{PassiveError, PassiveListener};
use crate::data::{active, DataConn};
use crate::proto::codes::*;
use crate::proto::{addr, Reply};
use crate::session::step::DataMode;

impl Conn {
    /// PASV (`extended`: EPSV): the listener kept from the session's last
    /// passive transfer, announced again once emptied of connections made
    /// before; else a new one, replacing an unused earlier one (RFC 959).
    pub(super) async fn open_passive(&mut self, extended: bool) -> Flow {
        self.pasv = None;
        let reused = self
            .kept
            .as_ref()
            .and_then(|k| k.take())
            .filter(|l| l.drain());
        let announce = if extended {
            None
        } else {
            // The address depends on the client's network (split horizon);
            // one read lock per PASV, and SIGHUP may have re-resolved it.
            let table = self.ctx.announce.for_client(self.peer.ip());
            // Behind a balancer, `reached` is its address (the VIP).
            match announce::pasv_address(self.reached.ip(), table) {
                Some(ip) => Some(ip),
                None => {
                    return self
                        .reply(Reply::new(
                            CANT_OPEN_DATA,
                            "PASV needs IPv4; use EPSV on IPv6.",
                        ))
                        .await
                }
            }
        };
        let bound = match reused {
            Some(l) => Ok(l),
            None => PassiveListener::bind(&self.ctx.ports, self.local.ip()),
        };
        match bound {
            Ok(l) => {
                let port = l.addr.port();
                self.pasv = Some(l);
                self.session.passive_opened();
                let text = match announce {
                    Some(ip) => addr::format_pasv_reply(SocketAddrV4::new(ip, port)),
                    None => addr::format_epsv_reply(port),
                };
                let code = if extended {
                    ENTERING_EXTENDED_PASSIVE
                } else {
                    ENTERING_PASSIVE
                };
                self.reply(Reply::new(code, text)).await
            }
            Err(PassiveError::Exhausted) => {
                // Counted in ringftp_passive_ports_exhausted_total.
                self.log_refusal(
                    Loud::Warn,
                    CANT_OPEN_DATA,
                    None,
                    format_args!(
                        "no free passive port in this shard's slice {} of --pasv-ports",
                        self.ctx.ports.range()
                    ),
                );
                self.send_reply(Reply::new(
                    CANT_OPEN_DATA,
                    "No free passive port; try again later.",
                ))
                .await
            }
            Err(PassiveError::Io(e)) => {
                if crate::vfs::VfsError::exhausts(&e) {
                    self.ctx.out_of_fds();
                }
                // Rate-limited per client: a client retrying EPSV through
                // an fd shortage asks thousands of times a second.
                self.log_refusal(
                    Loud::Warn,
                    CANT_OPEN_DATA,
                    None,
                    format_args!("cannot open a passive listener: {e}"),
                );
                self.reply(Reply::new(
                    CANT_OPEN_DATA,
                    "Cannot open passive connection.",
                ))
                .await
            }
        }
    }

    /// Establishes the data connection for `mode`, within `--data-timeout`.
    pub(super) fn open_data(
        &mut self,
        mode: DataMode,
    ) -> impl Future<Output = std::io::Result<DataConn>> + 'static {
        let pasv = self.pasv.take();
        // The listener goes back to the session once it has accepted.
        let keep = pasv.is_some().then(|| {
            let ports = &self.ctx.ports;
            self.kept.get_or_insert_with(|| ports.keeper()).clone()
        });
        let timeout = self.ctx.config.data_timeout;
        let allow_foreign = self.ctx.config.allow_foreign_data;
        let config = self.ctx.config.clone();
        let peer_ip = self.peer.ip();
        let local = self.local;
        let source_port = if self.ctx.config.active_port_20 && local.port() > 1 {
            Some(local.port() - 1)
        } else {
            None
        };
        async move {
            match mode {
                DataMode::Passive => {
                    let l = pasv.ok_or_else(|| std::io::Error::other("no passive listener"))?;
                    let proxy = config.proxy.as_ref().map(|p| (p, config.login_timeout));
                    let accepted =
                        tokio::time::timeout(timeout, l.accept(peer_ip, allow_foreign, proxy))
                            .await;
                    match accepted {
                        Ok(Ok(conn)) => {
                            if let Some(k) = keep {
                                k.put(l);
                            }
                            Ok(conn)
                        }
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "no data connection within --data-timeout",
                        )),
                    }
                }
                DataMode::Active(target) => {
                    active::connect(target, local.ip(), source_port, timeout).await
                }
                DataMode::None => Err(std::io::Error::other("no data connection set up")),
            }
        }
    }
}
