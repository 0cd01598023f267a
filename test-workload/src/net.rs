//! Loopback sockets, set up completely in the parent (bind, listen, connect, accept, options)
//! so the children only move data. All sockets are blocking, with timeouts so a child whose
//! peer died fails instead of hanging.

use std::io;
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use anyhow::{Context, Result};

/// How long a blocked send or receive may wait before the child gives up.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Receive buffer asked for on the UDP receiver, so a batch in flight is never dropped.
const UDP_RCVBUF: libc::c_int = 4 << 20;

/// Both ends of one connected loopback socket pair.
pub struct Pair {
    pub sender: OwnedFd,
    pub receiver: OwnedFd,
}

/// A connected TCP pair over 127.0.0.1: `sender` is the connecting side, `receiver` the
/// accepted one.
pub fn tcp_pair() -> Result<Pair> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind a TCP listener on 127.0.0.1")?;
    let addr = listener.local_addr().context("TCP listener address")?;
    let sender = TcpStream::connect(addr).with_context(|| format!("connect to {addr}"))?;
    let (receiver, _) = listener
        .accept()
        .context("accept the loopback connection")?;
    for s in [&sender, &receiver] {
        s.set_read_timeout(Some(IO_TIMEOUT))
            .context("set SO_RCVTIMEO")?;
        s.set_write_timeout(Some(IO_TIMEOUT))
            .context("set SO_SNDTIMEO")?;
    }
    Ok(Pair {
        sender: sender.into(),
        receiver: receiver.into(),
    })
}

/// Two UDP sockets on 127.0.0.1 connected to each other, the receiver with a large receive
/// buffer.
pub fn udp_pair() -> Result<Pair> {
    let sender = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).context("bind a UDP socket")?;
    let receiver = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).context("bind a UDP socket")?;
    let receiver_addr = receiver.local_addr().context("UDP receiver address")?;
    let sender_addr = sender.local_addr().context("UDP sender address")?;
    sender
        .connect(receiver_addr)
        .context("connect the UDP sender")?;
    // Connecting the receiver too makes it ignore any stray datagram from elsewhere.
    receiver
        .connect(sender_addr)
        .context("connect the UDP receiver")?;
    for s in [&sender, &receiver] {
        s.set_read_timeout(Some(IO_TIMEOUT))
            .context("set SO_RCVTIMEO")?;
        s.set_write_timeout(Some(IO_TIMEOUT))
            .context("set SO_SNDTIMEO")?;
    }
    // SO_RCVBUFFORCE passes net.core.rmem_max but needs CAP_NET_ADMIN; otherwise take what
    // SO_RCVBUF gives. The sender's lock-step keeps the data in flight small anyway.
    if setsockopt_int(&receiver, libc::SO_RCVBUFFORCE, UDP_RCVBUF).is_err() {
        setsockopt_int(&receiver, libc::SO_RCVBUF, UDP_RCVBUF).context("set SO_RCVBUF")?;
    }
    Ok(Pair {
        sender: sender.into(),
        receiver: receiver.into(),
    })
}

/// Allows `MSG_ZEROCOPY` sends on `socket`.
pub fn enable_zerocopy(socket: &OwnedFd) -> Result<()> {
    setsockopt_int(socket, libc::SO_ZEROCOPY, 1)
        .context("set SO_ZEROCOPY (needs Linux 4.14 or later)")
}

fn setsockopt_int(
    socket: &impl AsRawFd,
    option: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: passes a valid pointer to an int and its exact size.
    let ret = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
