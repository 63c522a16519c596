//! The one writer of the process's log output. Lines from every thread are
//! appended to one shared buffer; a background thread writes it to stderr in
//! batches, so a request never waits on the terminal or the log collector
//! and lines never interleave. Bounded: while more than `MAX_PENDING` bytes
//! wait to be written, new lines are dropped, counted, and the count is
//! logged once the writer catches up. `close` writes out everything pending
//! before the process exits, so a clean shutdown loses no line.

use std::io::Write;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// A batch this large is written at once; smaller ones wait at most
/// `FLUSH_EVERY` (urgent lines, such as warnings, are written at once).
const FLUSH_AT: usize = 32 * 1024;
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Most bytes waiting for the writer before lines are dropped (urgent
/// lines have as much again).
const MAX_PENDING: usize = 16 * 1024 * 1024;
/// Longest wait at exit for the pending lines to be written.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The shared buffer and the thread that writes it.
pub struct Sink {
    pending: Mutex<Pending>,
    wake: Condvar,
    out: Mutex<Box<dyn Write + Send>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    /// Lines refused since the last batch, for want of room.
    dropped: u64,
    /// A line that should not wait for the next tick.
    urgent: bool,
    closed: bool,
}

impl Sink {
    /// A sink writing to `out`; nothing is written before `start`.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            out: Mutex::new(out),
            writer: Mutex::new(None),
        }
    }

    /// The process's sink, writing to stderr, started on first use.
    pub fn global() -> &'static Sink {
        static SINK: OnceLock<Sink> = OnceLock::new();
        static STARTED: std::sync::Once = std::sync::Once::new();
        let sink = SINK.get_or_init(|| Sink::new(Box::new(std::io::stderr())));
        STARTED.call_once(|| sink.start());
        sink
    }

    /// Starts the writing thread.
    pub fn start(&'static self) {
        let handle = std::thread::Builder::new()
            .name("idgate-log".into())
            .spawn(move || self.run())
            .expect("the log writer thread starts");
        *lock(&self.writer) = Some(handle);
    }

    /// Appends one line, formatted by `write` into this thread's scratch
    /// buffer (nothing runs under the shared lock but a copy). An urgent
    /// line wakes the writer at once, and has room beyond the limit that
    /// drops the others.
    pub fn line(&self, urgent: bool, write: impl FnOnce(&mut Vec<u8>)) {
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        SCRATCH.with(|scratch| {
            let Ok(mut line) = scratch.try_borrow_mut() else {
                return; // a line written while this thread formats one
            };
            line.clear();
            write(&mut line);
            self.append(urgent, &line);
            if line.capacity() > FLUSH_AT {
                *line = Vec::new();
            }
        });
    }

    fn append(&self, urgent: bool, line: &[u8]) {
        let mut pending = lock(&self.pending);
        if pending.closed {
            // After `close`: written at once, behind anything still pending.
            let rest = std::mem::take(&mut pending.buf);
            let mut out = lock(&self.out);
            drop(pending);
            let _ = out.write_all(&rest).and_then(|()| out.write_all(line));
            return;
        }
        let before = pending.buf.len();
        let limit = if urgent { 2 * MAX_PENDING } else { MAX_PENDING };
        if before >= limit {
            pending.dropped += 1;
            return;
        }
        pending.buf.extend_from_slice(line);
        let wake = urgent && !pending.urgent || before < FLUSH_AT && pending.buf.len() >= FLUSH_AT;
        pending.urgent |= urgent;
        drop(pending);
        if wake {
            self.wake.notify_one();
        }
    }

    /// Writes out everything pending and stops the writing thread; later
    /// lines are written directly. Waits at most `CLOSE_WAIT` for a
    /// destination that does not take the lines (the process exits anyway).
    pub fn close(&self) {
        lock(&self.pending).closed = true;
        self.wake.notify_one();
        let Some(writer) = lock(&self.writer).take() else {
            return;
        };
        let deadline = std::time::Instant::now() + CLOSE_WAIT;
        while !writer.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if writer.is_finished() {
            let _ = writer.join();
        }
    }

    fn run(&self) {
        let mut batch = Vec::with_capacity(FLUSH_AT);
        loop {
            let (dropped, closed) = {
                let mut pending = lock(&self.pending);
                if !pending.closed && !pending.urgent && pending.buf.len() < FLUSH_AT {
                    pending = self
                        .wake
                        .wait_timeout(pending, FLUSH_EVERY)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                std::mem::swap(&mut pending.buf, &mut batch);
                pending.urgent = false;
                (std::mem::take(&mut pending.dropped), pending.closed)
            };
            if !batch.is_empty() {
                let mut out = lock(&self.out);
                let _ = out.write_all(&batch).and_then(|()| out.flush());
                batch.clear();
                if batch.capacity() > 4 * FLUSH_AT {
                    batch.shrink_to(FLUSH_AT);
                }
            }
            if dropped > 0 {
                tracing::warn!(
                    dropped,
                    "log lines dropped: stderr did not take them as fast as they came"
                );
            }
            if closed && lock(&self.pending).buf.is_empty() {
                return;
            }
        }
    }
}

/// The `tracing` side: each formatted event is one urgent line.
impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for &'static Sink {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> EventWriter {
        EventWriter(self)
    }
}

/// Appends what `tracing` formats to the sink.
pub struct EventWriter(&'static Sink);

impl Write for EventWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.line(true, |buf| buf.extend_from_slice(bytes));
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::sync::Arc;

    /// A destination the test reads, which can be held shut.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Waits for the gate to open before each write.
    struct Gated(Shared, Mutex<mpsc::Receiver<()>>);

    impl Write for Gated {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let _ = lock(&self.1).recv();
            self.0.write(b)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn leak(out: impl Write + Send + 'static) -> &'static Sink {
        let sink: &'static Sink = Box::leak(Box::new(Sink::new(Box::new(out))));
        sink.start();
        sink
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_and_close_writes_the_rest() {
        let out = Shared::default();
        let sink = leak(out.clone());
        std::thread::scope(|s| {
            for t in 0..4 {
                s.spawn(move || {
                    for n in 0..5000 {
                        sink.line(false, |b| {
                            b.extend_from_slice(format!("thread {t} line {n}\n").as_bytes())
                        });
                    }
                });
            }
        });
        sink.close();
        let text = String::from_utf8(lock(&out.0).clone()).unwrap();
        assert_eq!(text.lines().count(), 20_000);
        for t in 0..4 {
            let mine: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with(&format!("thread {t} ")))
                .collect();
            let expected: Vec<String> = (0..5000).map(|n| format!("thread {t} line {n}")).collect();
            assert_eq!(mine, expected, "thread {t}'s lines whole and in order");
        }
        sink.line(true, |b| b.extend_from_slice(b"after close\n"));
        assert!(String::from_utf8(lock(&out.0).clone())
            .unwrap()
            .ends_with("after close\n"));
    }

    #[test]
    fn an_urgent_line_does_not_wait_for_the_tick() {
        let out = Shared::default();
        let sink = leak(out.clone());
        // Let the writer settle into its wait first.
        std::thread::sleep(Duration::from_millis(20));
        sink.line(true, |b| b.extend_from_slice(b"warning\n"));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while lock(&out.0).is_empty() {
            assert!(std::time::Instant::now() < deadline, "never written");
            std::thread::yield_now();
        }
        assert_eq!(&*lock(&out.0), b"warning\n");
    }

    #[test]
    fn a_stuck_destination_costs_lines_not_memory_or_waiting() {
        let (open, gate) = mpsc::channel();
        let out = Shared::default();
        let sink = leak(Gated(out.clone(), Mutex::new(gate)));
        let mib = vec![b'x'; 1024 * 1024];
        // The writer takes the first batch and is stuck writing it; the rest
        // piles up to the limit, and what comes after is dropped at once.
        sink.line(true, |b| b.extend_from_slice(b"first\n"));
        std::thread::sleep(Duration::from_millis(50));
        for _ in 0..20 {
            sink.line(false, |b| {
                b.extend_from_slice(&mib);
                b.push(b'\n')
            });
        }
        let pending = lock(&sink.pending);
        assert!(pending.buf.len() <= MAX_PENDING + mib.len() + 1);
        assert_eq!(pending.dropped, 20 - 16);
        drop(pending);
        for _ in 0..10 {
            let _ = open.send(());
        }
        drop(open);
        sink.close();
        let written = lock(&out.0).clone();
        assert_eq!(written.iter().filter(|&&b| b == b'\n').count(), 1 + 16);
    }
}
