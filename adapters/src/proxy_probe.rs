//! The domain's `ProxyProbe`: a TCP connection from the node to the proxy, closed as soon as it
//! is open, nothing sent. The proxy is on this node, so an answer takes microseconds; the
//! timeout only keeps a dropped SYN from holding the caller.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use domain::ports::ProxyProbe;
use domain::sidecar::proxy::ProbeError;
use tokio::net::TcpStream;

/// Ample for a listener on this node; short enough that the taint's pace (2 s) holds.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
pub struct TcpProxyProbe {
    timeout: Duration,
}

impl Default for TcpProxyProbe {
    fn default() -> Self {
        Self {
            timeout: CONNECT_TIMEOUT,
        }
    }
}

#[async_trait]
impl ProxyProbe for TcpProxyProbe {
    async fn connect(&self, target: SocketAddr) -> Result<(), ProbeError> {
        match tokio::time::timeout(self.timeout, TcpStream::connect(target)).await {
            // Dropped at once: a close without a byte, which a TCP proxy forwards as such.
            Ok(Ok(_stream)) => Ok(()),
            Ok(Err(error)) if error.kind() == ErrorKind::ConnectionRefused => {
                Err(ProbeError::Refused)
            }
            Ok(Err(error)) => Err(ProbeError::Failed {
                reason: error.to_string(),
            }),
            Err(_elapsed) => Err(ProbeError::TimedOut {
                after: self.timeout,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn a_listener_answers() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = listener.local_addr().unwrap();
        assert_eq!(TcpProxyProbe::default().connect(target).await, Ok(()));
    }

    #[tokio::test]
    async fn a_port_nobody_listens_on_is_refused() {
        // Bound, then closed: the kernel refuses connections to it.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = listener.local_addr().unwrap();
        drop(listener);
        assert_eq!(
            TcpProxyProbe::default().connect(target).await,
            Err(ProbeError::Refused)
        );
    }

    #[tokio::test]
    async fn a_listener_whose_queue_is_full_times_out() {
        // Never accepted, so the kernel drops further SYNs once the accept queue is full: what
        // a stuck proxy (or a firewall that drops) looks like from the node.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let target = listener.local_addr().unwrap();
        let probe = TcpProxyProbe {
            timeout: Duration::from_millis(200),
        };
        let mut results = Vec::new();
        // A bounded loop: the queue of a backlog of 0 holds one or two connections.
        for _ in 0..8 {
            let result = probe.connect(target).await;
            let timed_out = matches!(result, Err(ProbeError::TimedOut { .. }));
            results.push(result);
            if timed_out {
                break;
            }
        }
        assert_eq!(
            results.last(),
            Some(&Err(ProbeError::TimedOut {
                after: Duration::from_millis(200)
            })),
            "{results:?}"
        );
    }
}
