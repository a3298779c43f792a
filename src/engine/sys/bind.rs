//! IP_BIND_ADDRESS_NO_PORT (ip(7), Linux 4.2), which neither rustix nor
//! socket2 wraps: an active-mode data connection binds the server's
//! address with port 0 before it connects, and without this option the
//! bind picks a port on its own, one no other connection from that
//! address may use, whatever its destination; with it the port is chosen
//! at connect(2), per destination, as for an unbound socket.

use std::io;
use std::os::fd::BorrowedFd;

/// Turns IP_BIND_ADDRESS_NO_PORT on for `sock` (IPv4 or IPv6): a later
/// bind to port 0 leaves the port to connect(2). Errors when `sock` is not
/// an inet socket or the kernel predates the option.
pub fn bind_address_no_port(sock: BorrowedFd<'_>) -> io::Result<()> {
    let on: libc::c_int = 1;
    super::setsockopt(
        sock,
        libc::IPPROTO_IP,
        libc::IP_BIND_ADDRESS_NO_PORT,
        &on,
        std::mem::size_of_val(&on),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Socket, Type};
    use std::net::{SocketAddr, TcpListener};
    use std::os::fd::AsFd;

    /// The bind leaves the port open, the connect picks one, and the
    /// connection comes from the bound address, IPv4 and IPv6.
    #[test]
    fn the_port_is_chosen_at_connect() {
        for (domain, ip) in [(Domain::IPV4, "127.0.0.1"), (Domain::IPV6, "::1")] {
            let Ok(l) = TcpListener::bind((ip, 0)) else {
                continue; // no IPv6 here
            };
            let s = Socket::new(domain, Type::STREAM, None).unwrap();
            bind_address_no_port(s.as_fd()).unwrap();
            let local = SocketAddr::new(ip.parse().unwrap(), 0);
            s.bind(&local.into()).unwrap();
            let bound = s.local_addr().unwrap().as_socket().unwrap();
            assert_eq!(bound.port(), 0, "{ip}: bind took a port");
            s.connect(&l.local_addr().unwrap().into()).unwrap();
            let (_, peer) = l.accept().unwrap();
            assert_eq!(peer.ip(), local.ip());
            assert_ne!(peer.port(), 0);
        }
    }
}
