//! A limit on how long a stream may go quiet: the timer starts when a poll
//! finds nothing new, progress stops it, and it fires once the quiet has
//! lasted the limit. One timer is made at the first wait and reset for
//! each later one.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

pub struct Silence {
    limit: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl Silence {
    pub fn new(limit: Duration) -> Self {
        Self {
            limit,
            timer: None,
            armed: false,
        }
    }

    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// The stream moved on: the next wait starts from nothing.
    pub fn heard(&mut self) {
        self.armed = false;
    }

    /// The stream has nothing new: ready once it has been quiet this long.
    pub fn poll_quiet(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !std::mem::replace(&mut self.armed, true) {
            let deadline = Instant::now() + self.limit;
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        match &mut self.timer {
            Some(timer) => timer.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}
