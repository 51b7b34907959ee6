//! The SQLite writer's own thread.
//!
//! SQLite has one writer, and a write transaction holds it from `BEGIN` to `COMMIT`, across
//! every statement between. Each statement is a round trip from the task driving the
//! transaction to the connection's thread and back, and on the shared runtime the task's
//! wake-up lands in a queue behind hundreds of delivery tasks, so the writer was held far
//! longer than SQLite worked. Transactions run here, on a single-threaded runtime with nothing
//! else to do, so the next statement follows at once; the dispatcher's claim loop and recorder
//! run here too (`DeliveryQueue::bookkeeping_runtime`), so the next claim or record follows a
//! commit at once.
//!
//! PostgreSQL has no single writer, and its connections belong to the runtime that opened
//! them, so there the work runs in the caller's task.

use std::future::Future;
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::StoreError;

/// A handle on the writer thread, shared by every clone of the store; the thread stops, and
/// abandons the work it still holds, when the last clone is dropped.
#[derive(Clone)]
pub(crate) struct WriterThread {
    handle: Handle,
    _stop: Arc<oneshot::Sender<()>>,
}

impl WriterThread {
    /// Starts the thread and its runtime.
    pub(crate) fn start() -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::config("cannot start the writer runtime").because(e))?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("agora-writer".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                })
            })
            .map_err(|e| StoreError::config("cannot start the writer thread").because(e))?;
        Ok(Self {
            handle,
            _stop: Arc::new(stop),
        })
    }

    /// Runs `work` on the writer thread and answers its result. The work goes on to its end
    /// even if the caller stops waiting, so a transaction is never cut between statements.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        match self.handle.spawn(work).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(StoreError::unavailable("the store is shutting down")),
        }
    }

    /// The runtime of the writer thread.
    pub(crate) fn handle(&self) -> tokio::runtime::Handle {
        self.handle.clone()
    }
}
