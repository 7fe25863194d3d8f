//! The intra-op worker threads of one run state, and each participant's scratch memory.
//!
//! A model runs on the calling thread; kernels that split their work call
//! [`crate::abi::KernelTable::parallel_for`], which hands ranges to these workers. The
//! threads are made once, when the run state is made (at load, or when the thread count
//! changes), and live until it is dropped: a `parallel_for` costs a wake-up, not a
//! thread spawn, and allocates nothing.
//!
//! Protocol: the dispatcher writes the job and bumps the generation under the lock, wakes
//! the workers that are parked, then every participant (the dispatcher first) claims the
//! job's parts one at a time from a shared counter and runs them, so a worker that is slow
//! to wake costs nothing but its help; the dispatcher returns when every part has
//! finished. Workers spin briefly on the generation before parking on the condition
//! variable, so back-to-back kernels do not pay a futex wake each. Each participant
//! (0 = the dispatching thread, 1.. = the workers) owns one [`Workspace`].

use std::cell::{Cell, UnsafeCell};
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::abi::TaskFn;
use crate::sys::AlignedBuf;

/// Bytes of each participant's workspace: what the GEMM packs its operands into.
pub const WORKSPACE_BYTES: usize = crate::kernels::gemm::WORKSPACE_FLOATS * 4;

/// How long a worker spins on the generation (and the dispatcher on the pending count)
/// before parking. Waking a parked thread costs a futex call and the scheduler's wake-up
/// latency, tens of microseconds on a virtual machine whose idle vCPU the host has
/// descheduled; a model's kernels dispatch every few hundred microseconds, so workers
/// that park between them lose more time than the kernels gain (MobileNetV2 at 2 threads
/// ran 3× slower than at 1 when each run followed 50 ms of idling, with a 4,096-pause
/// spin). A millisecond covers the gaps inside a run and costs an idle process at most
/// that much CPU after its last kernel (onnxruntime's pool spins for tens of ms).
const SPIN_TIME: std::time::Duration = std::time::Duration::from_millis(1);

/// Spins until `done()` or [`SPIN_TIME`] has passed; returns `done()`'s last answer.
fn spin_until(done: impl Fn() -> bool) -> bool {
    let start = std::time::Instant::now();
    loop {
        for _ in 0..64 {
            if done() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= SPIN_TIME {
            return done();
        }
    }
}

thread_local! {
    /// This thread's participant index in the pool it works for (0 on every thread that
    /// is not a worker, which is where a dispatch starts).
    static PARTICIPANT: Cell<usize> = const { Cell::new(0) };
    /// Whether this thread is running a task of a dispatch now: a nested `parallel_for`
    /// then runs inline instead of waiting on workers that are busy with its parent.
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
}

/// One dispatch: `task(data, begin, end)` over `0..n` in `parts` contiguous ranges.
#[derive(Clone, Copy)]
struct Job {
    task: TaskFn,
    data: *mut c_void,
    n: usize,
    parts: usize,
}

impl Job {
    fn range(&self, part: usize) -> (usize, usize) {
        (self.n * part / self.parts, self.n * (part + 1) / self.parts)
    }

    /// Runs range `part` on this thread, marked as inside a task.
    ///
    /// # Safety
    /// The task contract of [`crate::abi::ParallelForFn`]: `task` may run on any range
    /// from any thread, concurrently on disjoint ranges, while the dispatch lasts.
    unsafe fn run(&self, part: usize) -> i32 {
        let (begin, end) = self.range(part);
        if begin == end {
            return 0;
        }
        let outer = IN_TASK.replace(true);
        // SAFETY: the caller's promise.
        let status = unsafe { (self.task)(self.data, begin, end) };
        IN_TASK.set(outer);
        status
    }
}

// SAFETY: a job is only read while its dispatch lasts, during which the task contract
// allows calling `task` with `data` from any thread.
unsafe impl Send for Job {}

/// What the lock guards.
struct Slot {
    generation: u64,
    job: Option<Job>,
    /// Workers waiting on `wake` now.
    parked_workers: usize,
    /// Whether the dispatcher waits on `done` now.
    dispatcher_parked: bool,
}

struct Shared {
    slot: Mutex<Slot>,
    wake: Condvar,
    done: Condvar,
    /// The generation of the latest job (mirrors `Slot::generation`, for spinning
    /// without the lock).
    generation: AtomicU64,
    /// Parts of the current job that have not finished.
    pending: AtomicUsize,
    /// The next part of the current job to hand out (low 32 bits), tagged with the job's
    /// generation (high 32 bits), so that a worker that read an older job claims nothing.
    claims: AtomicU64,
    /// The first non-zero status a part returned.
    status: AtomicI32,
    shutdown: AtomicBool,
    /// Workers that have started running their loop.
    started: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        // Nothing panics while holding the lock; a poisoned lock still holds a valid slot.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next unclaimed part of the job of `generation`, if that job is still the
    /// current one and has parts left.
    fn claim(&self, generation: u64, parts: usize) -> Option<usize> {
        let tag = generation & 0xffff_ffff;
        let mut cur = self.claims.load(Ordering::Acquire);
        loop {
            let next = (cur & 0xffff_ffff) as usize;
            if cur >> 32 != tag || next >= parts {
                return None;
            }
            match self.claims.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(next),
                Err(now) => cur = now,
            }
        }
    }

    /// Claims and runs parts of `job` (of `generation`) until none is left, recording
    /// the first non-zero status and waking a parked dispatcher after the last part.
    /// Any participant runs any part: a worker the host has not scheduled yet (an idle
    /// vCPU of a virtual machine can take milliseconds to come back) delays nothing, the
    /// others take its part. Parts are claimed in order, so with every participant awake
    /// each runs one.
    ///
    /// # Safety
    /// The task contract of [`crate::abi::ParallelForFn`] for `job`, whose dispatch waits
    /// (through `pending`) until every claimed part has finished.
    unsafe fn run_parts(&self, generation: u64, job: &Job) {
        while let Some(part) = self.claim(generation, job.parts) {
            // SAFETY: the caller's promise; the part is this thread's alone (claimed).
            let status = unsafe { job.run(part) };
            if status != 0 {
                let _ = self.status.compare_exchange(0, status, Ordering::Relaxed, Ordering::Relaxed);
            }
            if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
                // Under the lock, so the dispatcher cannot miss it between its check and
                // wait; a dispatcher still spinning sees `pending` without the futex call.
                if self.lock().dispatcher_parked {
                    self.done.notify_all();
                }
            }
        }
    }
}

/// A participant's scratch memory, 64-byte aligned.
pub struct Workspace(UnsafeCell<AlignedBuf>);

/// The worker threads and workspaces of one run state.
pub struct Workers {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
    /// One per participant; fewer when memory ran out (participants without one then
    /// allocate their own scratch).
    workspaces: Vec<Workspace>,
}

// SAFETY: the workspaces are the only state not behind a lock or atomic; participant `i`
// alone uses workspace `i`, from its own thread (see `workspace`).
unsafe impl Sync for Workers {}

impl Workers {
    /// `threads - 1` workers (the dispatching thread is the first participant) and one
    /// workspace per participant. A thread that cannot be spawned is left out.
    pub fn new(threads: usize) -> Workers {
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot { generation: 0, job: None, parked_workers: 0, dispatcher_parked: false }),
            wake: Condvar::new(),
            done: Condvar::new(),
            generation: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
            claims: AtomicU64::new(0),
            status: AtomicI32::new(0),
            shutdown: AtomicBool::new(false),
            started: AtomicUsize::new(0),
        });
        let handles: Vec<JoinHandle<()>> = (1..threads.max(1))
            .map_while(|index| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new().name(format!("neoc-worker-{index}")).spawn(move || work(&shared, index)).ok()
            })
            .collect();
        // Wait until every worker runs its loop: a thread's start-up (which allocates) is
        // then over before the first run, not during it.
        let mut slot = shared.lock();
        while shared.started.load(Ordering::Acquire) < handles.len() {
            slot = shared.done.wait(slot).unwrap_or_else(|e| e.into_inner());
        }
        drop(slot);
        let workspaces = (0..=handles.len())
            .map_while(|_| AlignedBuf::zeroed(WORKSPACE_BYTES).map(|b| Workspace(UnsafeCell::new(b))))
            .collect();
        Workers { shared, handles, workspaces }
    }

    /// Participants a dispatch can use: the workers and the dispatching thread.
    pub fn participants(&self) -> usize {
        self.handles.len() + 1
    }

    /// Runs `task` over `0..n` in at most `parts` ranges, this thread taking its share; returns
    /// 0 or the first non-zero status a range returned. Inside a task (a nested call), or
    /// with one part, everything runs here. A one-part dispatch leaves the workers idle,
    /// so a dispatch nested in it still gets them (a conv with one tile splits its GEMM).
    ///
    /// # Safety
    /// The task contract of [`crate::abi::ParallelForFn`]; `data` stays valid until this
    /// returns. Called from one thread at a time (the one running the entry point).
    pub unsafe fn dispatch(&self, n: usize, parts: usize, task: TaskFn, data: *mut c_void) -> i32 {
        let parts = parts.min(self.participants()).min(n.max(1));
        if parts <= 1 || IN_TASK.get() {
            // SAFETY: the caller's promise; one range covers 0..n.
            return if n == 0 { 0 } else { unsafe { task(data, 0, n) } };
        }
        let job = Job { task, data, n, parts };
        let shared = &*self.shared;
        shared.status.store(0, Ordering::Relaxed);
        shared.pending.store(parts, Ordering::Relaxed);
        let generation = {
            let mut slot = shared.lock();
            slot.generation += 1;
            slot.job = Some(job);
            shared.claims.store(slot.generation << 32, Ordering::Release);
            shared.generation.store(slot.generation, Ordering::Release);
            // Spinning workers see the generation; only parked ones need the futex call.
            if slot.parked_workers > 0 {
                shared.wake.notify_all();
            }
            slot.generation
        };
        // SAFETY: the caller's promise.
        unsafe { shared.run_parts(generation, &job) };
        if !spin_until(|| shared.pending.load(Ordering::Acquire) == 0) {
            let mut slot = shared.lock();
            while shared.pending.load(Ordering::Acquire) != 0 {
                slot.dispatcher_parked = true;
                slot = shared.done.wait(slot).unwrap_or_else(|e| e.into_inner());
                slot.dispatcher_parked = false;
            }
        }
        shared.status.load(Ordering::Relaxed)
    }

    /// The calling participant's workspace, if it has one.
    ///
    /// # Safety
    /// Called from a participant of a dispatch of `self` (or from the thread running the
    /// entry point, between dispatches), and the returned memory is not used after that
    /// dispatch (or kernel call) ends: participant `i` alone uses workspace `i`.
    #[allow(clippy::mut_from_ref)] // Interior mutability: each workspace is an UnsafeCell.
    pub unsafe fn workspace(&self) -> Option<&mut [u8]> {
        let ws = self.workspaces.get(PARTICIPANT.get())?;
        // SAFETY: only this participant's thread reaches workspace `PARTICIPANT` (workers
        // have their own index; every other thread is participant 0, and only the one
        // running the entry point uses this pool), and not re-entrantly: a kernel takes
        // its workspace once per call.
        Some(unsafe { (*ws.0.get()).as_mut_slice() })
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        drop(self.shared.lock());
        self.shared.wake.notify_all();
        for h in self.handles.drain(..) {
            // A worker's tasks cannot unwind (they are `extern "C"`), so it cannot panic.
            let _ = h.join();
        }
    }
}

/// A worker's loop: wait for a new job, run its range if it takes part, report.
fn work(shared: &Shared, index: usize) {
    PARTICIPANT.set(index);
    shared.started.fetch_add(1, Ordering::Release);
    drop(shared.lock());
    shared.done.notify_all();
    let mut seen = 0u64;
    loop {
        spin_until(|| shared.generation.load(Ordering::Acquire) != seen || shared.shutdown.load(Ordering::Acquire));
        let job = {
            let mut slot = shared.lock();
            while slot.generation == seen && !shared.shutdown.load(Ordering::Acquire) {
                slot.parked_workers += 1;
                slot = shared.wake.wait(slot).unwrap_or_else(|e| e.into_inner());
                slot.parked_workers -= 1;
            }
            if shared.shutdown.load(Ordering::Acquire) {
                return;
            }
            seen = slot.generation;
            slot.job
        };
        let Some(job) = job else { continue };
        // SAFETY: the dispatcher's caller promised the task contract, and it waits for
        // every claimed part (through `pending`) before the job's data goes away; a job
        // that is no longer current has no parts left to claim.
        unsafe { shared.run_parts(seen, &job) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// # Safety
    /// `p` points to a `Vec<AtomicUsize>` of at least `end` counters, alive for the call.
    unsafe extern "C" fn count(p: *mut c_void, begin: usize, end: usize) -> i32 {
        // SAFETY: `p` is the test's slice of counters, alive for the dispatch.
        let hits = unsafe { &*(p as *const Vec<AtomicUsize>) };
        for h in &hits[begin..end] {
            h.fetch_add(1, Ordering::Relaxed);
        }
        if begin <= 5 && 5 < end { 9 } else { 0 }
    }

    #[test]
    fn every_index_runs_once_and_errors_come_back() {
        for threads in [1, 2, 3, 8] {
            let workers = Workers::new(threads);
            for round in 0..50 {
                for n in [0, 1, 5, 6, 100] {
                    let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
                    let parts = 1 + round % threads;
                    // SAFETY: `count` touches only its own range of `hits`, alive meanwhile.
                    let status = unsafe { workers.dispatch(n, parts, count, &hits as *const _ as *mut c_void) };
                    assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "threads {threads} n {n}");
                    assert_eq!(status, if n > 5 { 9 } else { 0 });
                }
            }
        }
    }

    /// A dispatch nested in a one-part dispatch still reaches the workers; one nested in
    /// a real split runs inline (its workers are busy with the parent).
    #[test]
    fn nesting_uses_the_workers_only_when_they_are_free() {
        struct Nest {
            workers: Workers,
            inner_threads: Vec<AtomicUsize>,
        }
        /// # Safety
        /// `p` points to a live `Nest` with at least `end` counters (`outer` likewise).
        unsafe extern "C" fn inner(p: *mut c_void, begin: usize, end: usize) -> i32 {
            // SAFETY: `p` is the test's `Nest`, alive for the dispatches.
            let nest = unsafe { &*(p as *const Nest) };
            for i in begin..end {
                nest.inner_threads[i].store(PARTICIPANT.get() + 1, Ordering::Relaxed);
            }
            // Long enough for the other participant to wake and claim the other part
            // (parts go to whoever claims them first).
            std::thread::sleep(std::time::Duration::from_millis(200));
            0
        }
        unsafe extern "C" fn outer(p: *mut c_void, _: usize, _: usize) -> i32 {
            // SAFETY: as in `inner`.
            let nest = unsafe { &*(p as *const Nest) };
            unsafe { nest.workers.dispatch(2, 2, inner, p) }
        }
        let nest = Nest { workers: Workers::new(2), inner_threads: (0..2).map(|_| AtomicUsize::new(0)).collect() };
        let p = &nest as *const Nest as *mut c_void;
        // SAFETY: the tasks only read `nest`'s pool and write its counters.
        unsafe { assert_eq!(nest.workers.dispatch(1, 2, outer, p), 0) };
        let mut who: Vec<usize> = nest.inner_threads.iter().map(|a| a.load(Ordering::Relaxed)).collect();
        who.sort();
        assert_eq!(who, vec![1, 2], "the nested split ran on the caller and the worker");
        // Two outer parts: each nested dispatch runs inline on its own thread.
        unsafe { assert_eq!(nest.workers.dispatch(2, 2, outer, p), 0) };
    }

    #[test]
    fn each_participant_has_its_own_workspace() {
        unsafe extern "C" fn mark(p: *mut c_void, _begin: usize, _end: usize) -> i32 {
            // SAFETY: `p` is the pool, alive for the dispatch; each participant's
            // workspace is its own.
            let workers = unsafe { &*(p as *const Workers) };
            let Some(ws) = (unsafe { workers.workspace() }) else { return 1 };
            // A non-atomic read-modify-write: two threads sharing a workspace could lose
            // counts (the total below would come out short).
            ws[0] = ws[0].wrapping_add(1);
            std::thread::yield_now();
            ws[1] = PARTICIPANT.get() as u8 + 1;
            0
        }
        let workers = Workers::new(4);
        assert_eq!(workers.participants(), 4);
        for _ in 0..10 {
            // SAFETY: `mark` reads the pool, which outlives the dispatch.
            assert_eq!(unsafe { workers.dispatch(4, 4, mark, &workers as *const _ as *mut c_void) }, 0);
        }
        // Parts go to whichever participant claims them; each wrote only its own workspace.
        let marks: Vec<(u8, u8)> = workers.workspaces.iter().map(|w| unsafe { ((*w.0.get()).as_slice()[0], (*w.0.get()).as_slice()[1]) }).collect();
        assert_eq!(marks.iter().map(|m| m.0 as usize).sum::<usize>(), 40, "{marks:?}");
        for (i, &(count, who)) in marks.iter().enumerate() {
            assert!(who == 0 && count == 0 || who as usize == i + 1, "workspace {i}: {marks:?}");
        }
    }
}
