//! Threads with a runtime of their own for the zeromq sockets' tasks, which may block a thread.

use std::future::Future;

use brine_daemon::watchdog::Watchdog;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// A thread with a runtime of its own, for the parts of the zeromq socket that may block a
/// thread: the accept loop and the tasks that add each new peer to the socket, the receiving
/// loop, the sending loop.
///
/// Why: zeromq 0.7 keeps a socket's peers in an `scc::HashMap` whose bucket locks are fair:
/// releasing one hands it to the first waiter and wakes it. The waiters are the connection
/// tasks (`upsert_async` of a new peer) and the sender (`get_async` of the answer's peer).
/// When a peer leaves, the receiving side removes it with the *blocking* `remove_sync`. If the
/// lock it waits for was just handed to a task woken on the same thread (a tokio worker puts
/// it in its LIFO slot, which no other worker may steal), that thread waits for itself: the
/// port is dead for good (this happened with REP under connection churn). On a thread of its
/// own, each part waits only on the others, which always run.
///
/// The thread's runtime also beats a heartbeat of the master's [`Watchdog`]: should the crate
/// block the thread for good all the same, systemd restarts the master.
#[derive(Debug)]
pub struct SocketThread {
    handle: Handle,
    /// Dropping it stops the thread.
    _stop: oneshot::Sender<()>,
    stopped: oneshot::Receiver<()>,
}

impl SocketThread {
    /// Starts the thread, watched by `watchdog`.
    pub fn start(name: &str, watchdog: &Watchdog) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.spawn(watchdog.heartbeat(format!("thread {name}")).pulse());
        let handle = runtime.handle().clone();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let (stopped_tx, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stop_rx.await;
                });
                // Dropping the runtime ends what is left of its tasks.
                drop(runtime);
                let _ = stopped_tx.send(());
            })?;
        Ok(Self {
            handle,
            _stop: stop,
            stopped,
        })
    }

    /// Runs `fut` on this thread and returns its output.
    pub async fn run<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> T {
        match self.handle.spawn(fut).await {
            Ok(output) => output,
            Err(err) => match err.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                // Only dropping `self` stops the thread.
                Err(err) => unreachable!("a socket thread stopped: {err}"),
            },
        }
    }

    /// Stops the thread and waits for it.
    pub async fn stop(self) {
        let Self {
            handle,
            _stop: stop,
            stopped,
        } = self;
        drop((handle, stop));
        let _ = stopped.await;
    }
}
