//! A future and its watchdog, where the watchdog is polled only when its
//! own waker fired.
//!
//! A client connection waits on its HTTP codec and on three watchdogs
//! (shutdown, the idle timeout, the request-head deadline). `select!`
//! polls every branch each time the task wakes, and the connection's task
//! wakes several times per request: the watchdogs cost about 1,300
//! instructions per proxied request that way. [`Watched`] gives the
//! watchdog a waker of its own, as `FuturesUnordered` does for its
//! futures, so a request wakes only the codec.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// What finished first.
#[derive(Debug)]
pub(crate) enum Either<M, W> {
    Main(M),
    Watchdog(W),
}

/// The watchdog's waker: notes that it fired, and wakes the task.
#[derive(Debug, Default)]
struct Fired {
    /// Set when the watchdog was woken (and at first, so it is polled once).
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Fired {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

pin_project_lite::pin_project! {
    /// Resolves with whichever of `main` and `watchdog` finishes first,
    /// `main` winning a tie.
    pub(crate) struct Watched<M, W> {
        #[pin]
        main: M,
        #[pin]
        watchdog: W,
        fired: Arc<Fired>,
        waker: Waker,
    }
}

impl<M, W> Watched<M, W> {
    pub(crate) fn new(main: M, watchdog: W) -> Self {
        let fired = Arc::new(Fired {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Watched {
            main,
            watchdog,
            waker: Waker::from(fired.clone()),
            fired,
        }
    }

    /// The main future, to go on with it alone.
    pub(crate) fn main(self: Pin<&mut Self>) -> Pin<&mut M> {
        self.project().main
    }
}

impl<M: Future, W: Future> Future for Watched<M, W> {
    type Output = Either<M::Output, W::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(done) = this.main.poll(cx) {
            return Poll::Ready(Either::Main(done));
        }
        // Registered before the flag is read: a wake in between is not lost.
        this.fired.task.register(cx.waker());
        if this.fired.woken.swap(false, Ordering::AcqRel) {
            let mut own = Context::from_waker(this.waker);
            if let Poll::Ready(done) = this.watchdog.poll(&mut own) {
                return Poll::Ready(Either::Watchdog(done));
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// Counts its polls; never ready.
    struct Counted(Arc<AtomicUsize>);

    impl Future for Counted {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_is_polled_once_then_only_when_it_wakes() {
        let polls = Arc::new(AtomicUsize::new(0));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        // The main future wakes ten times (one message each), then ends.
        let main = async move {
            let mut sum = 0;
            while let Some(n) = rx.recv().await {
                sum += n;
            }
            sum
        };
        let watched = Watched::new(main, Counted(polls.clone()));
        let feeder = tokio::spawn(async move {
            for n in 0..10 {
                tokio::time::sleep(Duration::from_millis(1)).await;
                tx.send(n).unwrap();
            }
        });
        match watched.await {
            Either::Main(sum) => assert_eq!(sum, 45),
            Either::Watchdog(()) => panic!("the watchdog never finishes"),
        }
        feeder.await.unwrap();
        assert_eq!(polls.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_watchdog_that_fires_ends_it() {
        let main = std::future::pending::<()>();
        let watchdog = tokio::time::sleep(Duration::from_secs(5));
        let started = tokio::time::Instant::now();
        assert!(matches!(
            Watched::new(main, watchdog).await,
            Either::Watchdog(())
        ));
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }
}
