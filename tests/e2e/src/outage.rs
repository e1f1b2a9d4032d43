//! A TCP forwarder that a scenario can cut and restore, to take a dependency (PostgreSQL,
//! NATS) away from the services under test without stopping the server other tests share.
//! While cut, open connections are dropped and new ones are refused, which is what a service
//! sees when the real server goes down.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Outage {
    pub port: u16,
    target: SocketAddr,
    /// The accept loop and every forwarded connection; aborting them closes the sockets.
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Outage {
    /// Starts forwarding a fresh local port to `target` (e.g. `127.0.0.1:5432`).
    pub async fn forward(target: &str) -> anyhow::Result<Self> {
        let target: SocketAddr = target.parse()?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let outage = Self {
            port,
            target,
            tasks: Arc::default(),
        };
        outage.serve(listener);
        Ok(outage)
    }

    /// The dependency goes away: connections drop and the port refuses new ones.
    pub fn cut(&self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
    }

    /// The dependency comes back on the same port.
    pub async fn restore(&self) -> anyhow::Result<()> {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await?;
        self.serve(listener);
        Ok(())
    }

    fn serve(&self, listener: TcpListener) {
        let tasks = Arc::clone(&self.tasks);
        let target = self.target;
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let connection = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                if let Ok(mut all) = tasks.lock() {
                    all.retain(|t| !t.is_finished());
                    all.push(connection);
                }
            }
        });
        if let Ok(mut all) = self.tasks.lock() {
            all.push(accept);
        }
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        self.cut();
    }
}
