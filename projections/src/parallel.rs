//! The read model folded from the store with its partitions in parallel
//! (decision 0022): the directory partition first, in log order, with the
//! next page read while this one is folded; then the establishments'
//! partitions, several at a time, each read with `read_partitions_raw` and folded
//! on the blocking pool against the directory; then their union. Used by a
//! node's start without a snapshot and by [`crate::ProjectionEngine::rebuild`].

use crate::follower::LoggedEvent;
use crate::model::{ApplyError, ReadModel};
use crate::slice::{DirectoryFold, PartitionFold};
use crate::ProjectionError;
use futures::StreamExt as _;
use registre_store::{EventStore, Partition, Position, RawEvent};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What a parallel fold reads and how.
#[derive(Clone, Debug)]
pub struct ParallelFold {
    /// Up to (and including) this position.
    pub head: Position,
    /// The establishments' partitions to fold; `None`: every one the
    /// directory knows.
    pub partitions: Option<Vec<Partition>>,
    /// Events per read.
    pub page: usize,
    /// Folds running at once.
    pub threads: usize,
}

impl ParallelFold {
    /// Folds the store's log up to `head`. `progress` hears the number of
    /// events folded so far (after the directory, then after each partition).
    pub async fn run(
        &self,
        store: &Arc<dyn EventStore>,
        mut progress: impl FnMut(u64),
    ) -> Result<ReadModel, ProjectionError> {
        let started = std::time::Instant::now();
        let folds = FoldThreads::start(self.threads.max(1))?;
        let directory = self.directory(store, &folds).await?;
        let directory_done = started.elapsed();
        let folded = AtomicU64::new(directory.1);
        progress(directory.1);
        let directory = Arc::new(directory.0);
        let partitions = match &self.partitions {
            None => directory.partitions(),
            Some(set) => set.clone(),
        };
        // Twice as many partitions in flight as folds at once: one reads
        // while another folds.
        let mut running = futures::stream::iter(partitions)
            .filter(|p| std::future::ready(!p.is_directory()))
            .map(|p| self.partition(store, Arc::clone(&directory), p, &folds))
            .buffer_unordered(2 * self.threads.max(1));
        let mut parts = Vec::new();
        while let Some(part) = running.next().await {
            let (part, n) = part?;
            progress(folded.fetch_add(n, Ordering::Relaxed) + n);
            parts.push(part);
        }
        drop(running);
        let partitions_done = started.elapsed();
        let directory = Arc::try_unwrap(directory).map_err(|_| {
            ProjectionError::Io(std::io::Error::other(
                "a partition fold outlived the rebuild",
            ))
        })?;
        let threads = self.threads;
        let mut joined = tokio::task::spawn_blocking(move || {
            folds.finish();
            directory.join(parts, threads)
        })
        .await
        .map_err(join_error)?;
        // Every event up to the head is folded or another node's: a node
        // serving a set is at the head even if its last event is older.
        joined.position = self.head;
        tracing::info!(
            events = folded.into_inner(),
            directory_ms = directory_done.as_millis() as u64,
            partitions_ms = (partitions_done - directory_done).as_millis() as u64,
            joined_ms = (started.elapsed() - partitions_done).as_millis() as u64,
            head = self.head,
            "read model folded from the log, partitions in parallel"
        );
        Ok(joined)
    }

    async fn directory(
        &self,
        store: &Arc<dyn EventStore>,
        folds: &FoldThreads,
    ) -> Result<(DirectoryFold, u64), ProjectionError> {
        let mut fold = DirectoryFold::new();
        let mut count = 0;
        let read = |after: Position| {
            let store = Arc::clone(store);
            let page = self.page;
            tokio::spawn(async move {
                store
                    .read_partitions_raw(after, &[Partition::directory()], page)
                    .await
            })
        };
        let mut next = Some(read(0));
        while let Some(reading) = next.take() {
            let page = reading.await.map_err(join_error)??;
            let Some(last) = page.last().map(|e| e.position) else {
                break;
            };
            if last < self.head && page.len() == self.page {
                next = Some(read(last));
            }
            let head = self.head;
            (fold, count) = folds
                .run(move || {
                    let n = fold_page(page, head, |e| fold.apply(e))?;
                    Ok::<_, ApplyError>((fold, count + n))
                })
                .await??;
        }
        Ok((fold, count))
    }

    async fn partition(
        &self,
        store: &Arc<dyn EventStore>,
        directory: Arc<DirectoryFold>,
        partition: Partition,
        folds: &FoldThreads,
    ) -> Result<(PartitionFold, u64), ProjectionError> {
        let mut fold = directory.partition(&partition);
        let mut count = 0;
        let only = [partition];
        let mut after = 0;
        while after < self.head {
            // A task of its own: the rows are parsed where the read is
            // polled, and the partitions' reads, all polled by the start's
            // one task, parsed every row on one thread.
            let page = tokio::spawn({
                let store = Arc::clone(store);
                let only = only.clone();
                let page = self.page;
                async move { store.read_partitions_raw(after, &only, page).await }
            })
            .await
            .map_err(join_error)??;
            let Some(last) = page.last().map(|e| e.position) else {
                break;
            };
            let full = page.len() == self.page;
            let head = self.head;
            let directory = Arc::clone(&directory);
            (fold, count) = folds
                .run(move || {
                    let n = fold_page(page, head, |e| fold.apply(&directory, e))?;
                    Ok::<_, ApplyError>((fold, count + n))
                })
                .await??;
            if !full {
                break;
            }
            after = last;
        }
        Ok((fold, count))
    }
}

/// Decodes and folds the events of `page` up to `head`; returns how many.
fn fold_page(
    page: Vec<RawEvent>,
    head: Position,
    mut apply: impl FnMut(LoggedEvent),
) -> Result<u64, ApplyError> {
    let mut n = 0;
    for e in page.into_iter().take_while(|e| e.position <= head) {
        apply(LoggedEvent::decode_raw(e)?);
        n += 1;
    }
    Ok(n)
}

type FoldJob = Box<dyn FnOnce() + Send>;

/// The threads a parallel fold folds its pages on, as many as it may fold at
/// once. They end before the union: mimalloc lends the memory of a thread
/// that ended to the threads still allocating, so the union builds the model
/// in the pages the parts are freed from. Folded on the blocking pool, whose
/// threads outlive the fold and keep their pages, the union faulted in as many
/// fresh pages as the model holds (40 % of its time, zeroing them).
struct FoldThreads {
    jobs: std::sync::mpsc::Sender<FoldJob>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl FoldThreads {
    fn start(n: usize) -> Result<Self, ProjectionError> {
        let (jobs, queue) = std::sync::mpsc::channel::<FoldJob>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        let threads = (0..n)
            .map(|i| {
                let queue = Arc::clone(&queue);
                std::thread::Builder::new()
                    .name(format!("registre-fold-{i}"))
                    .spawn(move || loop {
                        // A job never panics into the lock: `run` catches it.
                        let next = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match next {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(FoldThreads { jobs, threads })
    }

    /// Runs `f` on one of the threads; a panic in it is resumed here.
    async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, ProjectionError> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let job: FoldJob = Box::new(move || {
            let _ = done.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
        });
        let gone = || ProjectionError::Io(std::io::Error::other("the fold's threads ended"));
        self.jobs.send(job).map_err(|_| gone())?;
        match answer.await.map_err(|_| gone())? {
            Ok(r) => Ok(r),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Closes the queue and waits for the threads to end (blocking: call it
    /// off the runtime). A fold that failed drops them instead: they end once
    /// the queue is empty.
    fn finish(self) {
        let FoldThreads { jobs, threads } = self;
        drop(jobs);
        for thread in threads {
            if let Err(panic) = thread.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

fn join_error(e: tokio::task::JoinError) -> ProjectionError {
    match e.try_into_panic() {
        Ok(panic) => std::panic::resume_unwind(panic),
        Err(e) => ProjectionError::Io(std::io::Error::other(e)),
    }
}

/// Runs `f` on each item on up to `threads` threads; results in item order.
pub(crate) fn in_parallel<T: Send, R: Send>(
    items: Vec<T>,
    threads: usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let n = items.len();
    let work = std::sync::Mutex::new(items.into_iter().enumerate());
    let f = &f;
    let work = &work;
    let mut out: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.clamp(1, n.max(1)))
            .map(|_| {
                scope.spawn(move || {
                    let mut done = Vec::new();
                    while let Some((i, item)) = work.lock().ok().and_then(|mut w| w.next()) {
                        done.push((i, f(item)));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fold_threads_answer_each_job_and_end_when_finished() {
        let folds = FoldThreads::start(2).expect("threads");
        let caller = std::thread::current().id();
        let answers = futures::future::join_all((0..8u64).map(|i| {
            folds.run(move || {
                (
                    i * i,
                    std::thread::current().id(),
                    std::thread::current().name().map(str::to_owned),
                )
            })
        }))
        .await;
        for (i, answer) in answers.into_iter().enumerate() {
            let (square, thread, name) = answer.expect("answered");
            assert_eq!(square, (i * i) as u64);
            assert_ne!(thread, caller, "folded on the fold's own threads");
            assert!(name.is_some_and(|n| n.starts_with("registre-fold-")));
        }
        assert_eq!(folds.threads.len(), 2);
        tokio::task::spawn_blocking(move || folds.finish())
            .await
            .expect("the threads end once the queue is closed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[should_panic(expected = "a bug in a fold")]
    async fn a_panic_in_a_fold_reaches_the_caller() {
        let folds = FoldThreads::start(1).expect("threads");
        let _ = folds.run(|| panic!("a bug in a fold")).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_fold_threads_survive_a_job_that_panicked() {
        let folds = FoldThreads::start(1).expect("threads");
        let folds = Arc::new(folds);
        let panicked = tokio::spawn({
            let folds = Arc::clone(&folds);
            async move { folds.run(|| -> u8 { panic!("one bad page") }).await }
        })
        .await;
        assert!(panicked.is_err_and(|e| e.is_panic()));
        assert_eq!(folds.run(|| 7).await.expect("still folding"), 7);
    }
}
