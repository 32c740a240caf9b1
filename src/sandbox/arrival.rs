//! When a request reached the machine: the kernel's receive timestamp of its bytes
//! (`SO_TIMESTAMPNS`), not the moment a task got round to parsing it.
//!
//! The sandbox's rate limiter judges each request by its arrival. Read from the clock
//! after parsing, the arrival includes the sandbox's own scheduling delay, which on a
//! loaded machine (the benches run clients and sandbox on the same two cores) reaches
//! milliseconds: a limiter with no burst tolerance would then refuse a request the
//! client sent on time because the one before it was parsed late. A real API's limit
//! applies where the request arrives; on loopback the kernel stamps the bytes when
//! the client writes them. (The kernel turns stamping on for the machine through a
//! work queue when the first socket asks; until that has run, bytes are stamped when
//! read, so a loaded machine's very first requests may be judged by their read time.)

use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;

/// Asks the kernel to stamp the bytes `stream` receives. Without it (an error),
/// [`Stamped::arrival`] falls back to the time they were read.
pub(crate) fn enable(stream: &TcpStream) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket fd and a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The read half of a connection that remembers when its latest bytes arrived.
pub(crate) struct Stamped {
    inner: OwnedReadHalf,
    last: Option<Instant>,
}

impl Stamped {
    /// Wraps the read half of a stream set up with [`enable`].
    pub(crate) fn new(inner: OwnedReadHalf) -> Stamped {
        Stamped { inner, last: None }
    }

    /// When the bytes read last arrived (now, when the kernel gave no stamp).
    pub(crate) fn arrival(&self) -> Instant {
        self.last.unwrap_or_else(Instant::now)
    }
}

impl AsyncRead for Stamped {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let stream: &TcpStream = this.inner.as_ref();
        loop {
            ready!(stream.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match stream.try_io(Interest::READABLE, || recv_stamped(stream, unfilled)) {
                Ok((n, stamp)) => {
                    buf.advance(n);
                    if let Some(at) = stamp {
                        this.last = Some(instant_of(at));
                    }
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// One `recvmsg` into `out`: the bytes read and the kernel's stamp of them, if any.
fn recv_stamped(stream: &TcpStream, out: &mut [u8]) -> io::Result<(usize, Option<SystemTime>)> {
    let mut iov = libc::iovec {
        iov_base: out.as_mut_ptr().cast(),
        iov_len: out.len(),
    };
    // Room for one timespec control message, aligned for cmsghdr.
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: a valid fd and a msghdr whose buffers are live and sized as declared.
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((n as usize, stamp_of(&msg)))
}

/// The `SCM_TIMESTAMPNS` control message of a received `msg`.
fn stamp_of(msg: &libc::msghdr) -> Option<SystemTime> {
    // SAFETY: the CMSG_* walk stays within msg_control/msg_controllen, which recvmsg
    // filled; the data of an SCM_TIMESTAMPNS message is one timespec.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            let c = &*cmsg;
            if c.cmsg_level == libc::SOL_SOCKET && c.cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                let d = Duration::new(
                    ts.tv_sec.max(0) as u64,
                    ts.tv_nsec.clamp(0, 999_999_999) as u32,
                );
                return Some(UNIX_EPOCH + d);
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    None
}

/// The monotonic instant of a wall-clock stamp taken a moment ago.
fn instant_of(at: SystemTime) -> Instant {
    let ago = SystemTime::now().duration_since(at).unwrap_or_default();
    let now = Instant::now();
    now.checked_sub(ago).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A loopback connection whose server side stamps what it receives.
    async fn stamped_pair() -> (TcpStream, Stamped) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        enable(&server).unwrap();
        let (rd, _wr) = server.into_split();
        (client, Stamped::new(rd))
    }

    /// Sends a line, reads it `wait` later, and gives how long after sending it was
    /// stamped.
    async fn stamp_after(client: &mut TcpStream, rd: &mut Stamped, wait: Duration) -> Duration {
        let sent = Instant::now();
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        tokio::time::sleep(wait).await;
        let mut buf = [0u8; 64];
        let n = rd.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"GET / HTTP/1.1\r\n");
        let arrived = rd.arrival();
        assert!(
            arrived >= sent - Duration::from_millis(5),
            "{arrived:?} vs {sent:?}"
        );
        arrived.saturating_duration_since(sent)
    }

    #[tokio::test]
    async fn bytes_carry_the_time_they_arrived_not_when_they_were_read() {
        // The first socket of the machine to ask for stamps turns them on through a
        // kernel work queue, which a loaded machine runs late; until then the kernel
        // stamps bytes when they are read. Wait (at most 5 s) until a first
        // connection's bytes are stamped on arrival, and keep it open: it keeps the
        // stamps on.
        let (mut first, mut first_rd) = stamped_pair().await;
        for _ in 0..100 {
            let after = stamp_after(&mut first, &mut first_rd, Duration::from_millis(50)).await;
            if after < Duration::from_millis(25) {
                break;
            }
        }
        // Read well after the bytes arrived: the stamp is the arrival, not the read.
        let (mut client, mut rd) = stamped_pair().await;
        let after = stamp_after(&mut client, &mut rd, Duration::from_millis(200)).await;
        assert!(
            after < Duration::from_millis(100),
            "stamped when read, not when it arrived: {after:?} after sending"
        );
    }
}
