//! Where a stream's protocol machine puts its responses. The machine runs inside the response
//! body itself: HTTP/2 polls the body, the body polls the machine, and whatever the machine
//! sends is the body's next message. Compared with a spawned task feeding a channel, a push
//! wakes one task instead of two, and a connected stream holds no task or channel of its own.
//!
//! The machine hands a response over through a slot of the thread it is polled on (as the
//! `async-stream` crate does for `yield`): the slot is filled while the body polls the machine
//! and emptied by the body before that poll returns, so it is never full between polls and
//! never seen by another stream. It lives outside the stream's own memory on purpose: with
//! 10,000 streams, every separate piece of per-stream memory a push touches is a cache miss.
//!
//! The machine can hold at most one unsent response: [`Outbox::send`] waits until the body has
//! handed the previous one to HTTP/2, which is the backpressure a slow Envoy should exert.

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tonic::Status;

use crate::wire::Encoded;

type Item = Result<Encoded, Status>;

thread_local! {
    /// What the machine being polled on this thread sent, until its body takes it.
    static SENT: RefCell<Option<Item>> = const { RefCell::new(None) };
}

/// The machine's side: sends responses (or the status that ends the stream). Only the
/// machine that [`drive`] created it for may use it.
pub struct Outbox(());

impl Outbox {
    /// Waits until the previous response is taken, then leaves this one for the body.
    pub async fn send(&self, response: Item) {
        let mut response = Some(response);
        poll_fn(|_cx| {
            SENT.with_borrow_mut(|sent| {
                if sent.is_some() {
                    // No waker needed: the body returns the response it finds, and whoever
                    // takes it polls the body, and so this, again.
                    return Poll::Pending;
                }
                *sent = response.take();
                Poll::Ready(())
            })
        })
        .await
    }
}

/// The body's side: a stream of what the machine sends, ending when the machine returns.
pub struct Responses<F> {
    machine: Option<Pin<Box<F>>>,
}

/// Runs `machine` (given its [`Outbox`]) as the stream of its responses.
pub fn drive<F>(machine: impl FnOnce(Outbox) -> F) -> Responses<F>
where
    F: Future<Output = ()>,
{
    Responses {
        machine: Some(Box::pin(machine(Outbox(())))),
    }
}

impl<F: Future<Output = ()>> Stream for Responses<F> {
    type Item = Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        let Some(machine) = self.machine.as_mut() else {
            return Poll::Ready(None);
        };
        // Even if the machine panics, what it sent must not reach the next stream polled on
        // this thread.
        let _empty_after = EmptyOnDrop;
        let finished = machine.as_mut().poll(cx).is_ready();
        if finished {
            self.machine = None;
        }
        match SENT.with_borrow_mut(Option::take) {
            Some(response) => Poll::Ready(Some(response)),
            None if finished => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

/// Empties this thread's slot when dropped, on unwinding too.
struct EmptyOnDrop;

impl Drop for EmptyOnDrop {
    fn drop(&mut self) {
        SENT.with_borrow_mut(|sent| *sent = None);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use prost::bytes::Bytes;

    fn response(nonce: u64) -> Result<Encoded, Status> {
        Ok(Encoded {
            head: Bytes::new(),
            nonce,
            tail: Bytes::new(),
        })
    }

    #[tokio::test]
    async fn responses_arrive_in_order_and_the_stream_ends_with_the_machine() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(4);
        let responses = drive(|outbox| async move {
            while let Some(nonce) = rx.recv().await {
                // Two in a row: the second waits until the first is taken.
                outbox.send(response(nonce)).await;
                outbox.send(response(nonce * 10)).await;
            }
            outbox.send(Err(Status::cancelled("done"))).await;
        });
        tokio::pin!(responses);
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        drop(tx);
        let mut got = Vec::new();
        while let Some(item) = responses.next().await {
            got.push(item.map(|e| e.nonce).map_err(|s| s.code()));
        }
        assert_eq!(
            got,
            [Ok(1), Ok(10), Ok(2), Ok(20), Err(tonic::Code::Cancelled)]
        );
    }

    #[test]
    fn a_machine_that_panics_leaves_nothing_for_the_next_stream() {
        let unwound = std::panic::catch_unwind(|| {
            let panicking = drive(|outbox| async move {
                outbox.send(response(1)).await;
                panic!("the machine failed after sending");
            });
            let mut panicking = std::pin::pin!(panicking);
            let waker = futures::task::noop_waker();
            let _ = panicking
                .as_mut()
                .poll_next(&mut Context::from_waker(&waker));
        });
        assert!(unwound.is_err());
        assert!(SENT.with_borrow(Option::is_none));
    }

    #[tokio::test]
    async fn interleaved_streams_get_only_their_own_responses() {
        let machine = |base: u64| {
            drive(move |outbox| async move {
                for i in 0..3 {
                    outbox.send(response(base + i)).await;
                    outbox.send(response(base + 10 + i)).await;
                    tokio::task::yield_now().await;
                }
            })
        };
        let (a, b) = (machine(100), machine(200));
        tokio::pin!(a, b);
        let mut got = (Vec::new(), Vec::new());
        loop {
            let (x, y) = (a.next().await, b.next().await);
            if x.is_none() && y.is_none() {
                break;
            }
            got.0
                .extend(x.map(|r| r.map(|e| e.nonce).unwrap_or_default()));
            got.1
                .extend(y.map(|r| r.map(|e| e.nonce).unwrap_or_default()));
        }
        assert_eq!(got.0, [100, 110, 101, 111, 102, 112]);
        assert_eq!(got.1, [200, 210, 201, 211, 202, 212]);
    }
}
