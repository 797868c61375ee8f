//! The threads of a pass: [`on_pool`] runs a pass on the calling thread while rayon workers
//! spin beside it as helpers, and [`for_each_task`] hands the pass's parallel loops to those
//! helpers directly, without rayon's join.
//!
//! Why not rayon's join inside a pass: a thread that waits at a join for a stolen half goes to
//! sleep after ~30 idle rounds (microseconds), and waking it again (a futex call, then a
//! reschedule of the virtual CPU) took 20–70 µs on this machine. EfficientNet's forward pass
//! has ~30 parallel loops of 50–500 µs each; counted per loop, the second thread started 7–11
//! µs late on average and the loop returned ~20 µs after both threads had finished, about
//! 0.8 ms of a 8.5 ms pass with one thread idle (design.md, "Threads of a pass"). Here nobody
//! sleeps while a pass runs: the pass thread offers a loop, runs tasks itself, and waits for
//! the helpers' last tasks by spinning; helpers poll for offered loops between rayon jobs.

use std::any::Any;
use std::cell::Cell;
use std::ops::Range;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rayon::prelude::*;

/// Idle rounds a spinning helper of [`on_pool`] spins before it yields its core to the OS.
const IDLE_SPINS: u32 = 64;

/// One parallel loop on offer: items `0..n` of `run`, the pass thread claiming runs of them
/// from the front and helpers from the back.
///
/// Why from both ends: callers number items along the data (column blocks of a map, bands of
/// rows, groups of channels), so the pass thread runs the first part of every loop and the
/// helper the last, loop after loop, and a layer finds much of its input in the cache of the
/// core that wrote it. Claimed from one counter, the two threads interleaved and every layer
/// read half its input from the other core.
struct Job<'a> {
    run: &'a (dyn Fn(Range<usize>) + Sync),
    /// The next item from the front (high 32 bits) and one past the next from the back (low
    /// 32 bits); the loop is out of items when they meet.
    ends: AtomicU64,
    /// How many items one claim takes (see [`Claims`]).
    claims: Claims,
}

/// How many items one claim of a [`Job`] takes.
#[derive(Clone, Copy)]
enum Claims {
    /// One ([`for_each_task`]).
    One,
    /// `max(least, left / parts)` of the `left` unclaimed items ([`for_each_guided`]).
    Shrinking { least: usize, parts: usize },
}

impl<'a> Job<'a> {
    fn new(run: &'a (dyn Fn(Range<usize>) + Sync), items: usize, claims: Claims) -> Job<'a> {
        assert!(items <= u32::MAX as usize, "items of one loop");
        Job {
            run,
            ends: AtomicU64::new(items as u64),
            claims,
        }
    }

    /// Claims and runs items until none are left: from the front on the pass thread, from the
    /// back on a helper.
    fn work(&self, from_back: bool) {
        while let Some(items) = self.claim(from_back) {
            (self.run)(items);
        }
    }

    fn claim(&self, from_back: bool) -> Option<Range<usize>> {
        let split = |e: u64| (e >> 32, e & u64::from(u32::MAX));
        let take = |left: u64| match self.claims {
            Claims::One => 1,
            Claims::Shrinking { least, parts } => {
                (left.div_ceil(parts as u64)).max(least as u64).min(left)
            }
        };
        self.ends
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |e| {
                let (front, back) = split(e);
                (front < back).then(|| {
                    let n = take(back - front);
                    if from_back {
                        (front << 32) | (back - n)
                    } else {
                        ((front + n) << 32) | back
                    }
                })
            })
            .ok()
            .map(|e| {
                let (front, back) = split(e);
                let n = take(back - front);
                let first = if from_back { back - n } else { front };
                first as usize..(first + n) as usize
            })
    }

    /// Leaves the items not yet claimed unrun (a task panicked: the pass is failing).
    fn abandon(&self) {
        self.ends.store(0, Ordering::Relaxed);
    }
}

/// What a pass shares with its helpers.
struct Team {
    /// The loop on offer (a [`Job`] on the pass thread's stack), or null.
    job: AtomicPtr<()>,
    /// Loops offered so far, so that a helper does not re-enter one it has finished.
    offered: AtomicUsize,
    /// Helpers inside the loop on offer: the pass thread waits for them before its loop ends.
    inside: AtomicUsize,
    /// The pass is over: helpers leave.
    done: AtomicBool,
    /// The first panic of a task on a helper, for the pass thread to re-raise.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

impl Team {
    /// Enters the loop on offer, if any: the loop cannot end before the guard is dropped.
    fn enter(&self) -> Option<(&Job<'_>, Inside<'_>)> {
        let job = self.job.load(Ordering::Acquire);
        if job.is_null() {
            return None;
        }
        self.inside.fetch_add(1, Ordering::SeqCst);
        let guard = Inside(self);
        // The pass thread withdraws a loop (SeqCst store) before it reads `inside` (SeqCst):
        // either it sees this helper inside and waits, or this load sees the withdrawal.
        // A different pointer is a newer loop (a stack address may come back): enter that one.
        let now = self.job.load(Ordering::SeqCst);
        if now.is_null() {
            return None;
        }
        // SAFETY: `now` is the loop on offer, and its pass thread does not return from
        // `for_each_task` (ending the `Job`'s life) while `inside` counts this helper.
        Some((unsafe { &*(now as *const Job<'_>) }, guard))
    }
}

/// A helper inside an offered loop (see [`Team::enter`]).
struct Inside<'a>(&'a Team);

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        self.0.inside.fetch_sub(1, Ordering::Release);
    }
}

thread_local! {
    /// Whether this worker is a pass's spinning helper (see [`help`]).
    static BUSY: Cell<bool> = const { Cell::new(false) };
    /// The team of the pass this thread runs, while it may offer loops (null elsewhere: on
    /// helpers, outside passes, and inside a task of an offered loop).
    static TEAM: Cell<*const Team> = const { Cell::new(std::ptr::null()) };
}

/// Runs `f(task)` for every task of `0..tasks`, in parallel: on a pass thread (inside
/// [`on_pool`]) by offering the loop to the pass's spinning helpers, elsewhere (and for loops
/// nested in a task) on rayon. Tasks are claimed one at a time, the pass thread's from the
/// front and the helpers' from the back (see [`Job`]), so callers size them as they would rayon
/// tasks (a few per thread) and number them along their data.
pub(crate) fn for_each_task(tasks: usize, f: impl Fn(usize) + Sync) {
    if tasks <= 1 {
        (0..tasks).for_each(f);
        return;
    }
    if TEAM.get().is_null() {
        let f = &f;
        (0..tasks).into_par_iter().for_each(f);
        return;
    }
    offer(tasks, Claims::One, &|items: Range<usize>| {
        items.for_each(&f)
    });
}

/// `f(range)` over consecutive ranges that cover `0..items`, in parallel, each claim taking
/// a share of what is left: the first claims `items / (2·threads)`, the last ones `least`.
/// Large first claims keep the work of a thread together (one call, one contiguous run of the
/// data); small last ones let the threads finish together. With four equal tasks per loop,
/// one thread of a pass waited 5–16 µs for the other at the end of each of EfficientNet's
/// projections (design.md, "Cold weights, shrinking claims, expansions into cells").
///
/// Where the ranges fall depends on timing, so `f` must compute each item the same way
/// whatever range it comes in (results must not depend on the number of threads).
pub(crate) fn for_each_guided(items: usize, least: usize, f: impl Fn(Range<usize>) + Sync) {
    let least = least.max(1);
    let threads = rayon::current_num_threads().max(1);
    if items <= least || threads == 1 {
        if items > 0 {
            f(0..items);
        }
        return;
    }
    if TEAM.get().is_null() {
        let size = items.div_ceil(4 * threads).max(least);
        let f = &f;
        (0..items.div_ceil(size))
            .into_par_iter()
            .for_each(|i| f(i * size..((i + 1) * size).min(items)));
        return;
    }
    let parts = 2 * threads;
    offer(items, Claims::Shrinking { least, parts }, &f);
}

/// Offers a loop to the pass's helpers and runs it on this thread too (see [`for_each_task`]).
fn offer(items: usize, claims: Claims, run: &(dyn Fn(Range<usize>) + Sync)) {
    // SAFETY: the callers checked that TEAM is set: `on_pool` set it to its team for this
    // thread and clears it before the team goes out of scope.
    let team = unsafe { &*TEAM.get() };
    let job = Job::new(run, items, claims);
    // Declared after `job`, so dropped (the loop withdrawn and its helpers waited for) before
    // `job` is, on return and on unwinding alike.
    let offer = Offer(team);
    TEAM.set(std::ptr::null());
    // The loop first, then its count: a helper that sees the new count finds the loop (had the
    // count come first, a helper could find no loop yet, note the count as seen, and sit this
    // loop out).
    team.job
        .store(&job as *const Job<'_> as *mut (), Ordering::SeqCst);
    team.offered.fetch_add(1, Ordering::Release);
    job.work(false);
    drop(offer);
    reraise(team);
}

/// `f(range)` over ranges of `0..items` of at least `min_len` items (unless there are fewer),
/// at most sixteen per thread, in parallel as [`for_each_task`] runs tasks. A task may set up
/// scratch space once for its range.
pub(crate) fn for_each_range(items: usize, min_len: usize, f: impl Fn(Range<usize>) + Sync) {
    let tasks = (items / min_len.max(1))
        .clamp(1, 16 * rayon::current_num_threads())
        .min(items);
    for_each_task(tasks, |task| {
        f(task * items / tasks..(task + 1) * items / tasks)
    });
}

/// `f(i, chunk)` for every chunk `i` of `len` values of `out` (the last may be shorter), in
/// parallel as [`for_each_task`] runs tasks. Consecutive chunks are grouped into four tasks per
/// thread: every claim of a task is a round trip of a shared counter between the cores, too
/// much for thousands of small chunks (a global average pool's 1280 planes of 49 values).
pub(crate) fn for_each_chunk_mut<T: Send>(
    out: &mut [T],
    len: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let len = len.max(1);
    let total = out.len();
    let chunks = total.div_ceil(len);
    let tasks = chunks.min(4 * rayon::current_num_threads());
    let base = SharedOut(out.as_mut_ptr());
    for_each_task(tasks, |task| {
        for i in task * chunks / tasks..(task + 1) * chunks / tasks {
            let start = i * len;
            // SAFETY: chunk i is `out[start .. start + n]`, inside `out` and disjoint from every
            // other chunk, and exactly one task visits it.
            let chunk = unsafe {
                std::slice::from_raw_parts_mut(base.get().add(start), len.min(total - start))
            };
            f(i, chunk);
        }
    });
}

/// An offered loop (see [`for_each_task`]): dropping it withdraws the loop, waits until no
/// helper is inside, and lets the pass thread offer loops again.
struct Offer<'a>(&'a Team);

impl Drop for Offer<'_> {
    fn drop(&mut self) {
        self.0.job.store(std::ptr::null_mut(), Ordering::SeqCst);
        // Bounded by the helpers' last tasks: every task was claimed before this thread got
        // here (or it is unwinding, and the helpers finish theirs).
        while self.0.inside.load(Ordering::SeqCst) != 0 {
            std::hint::spin_loop();
        }
        TEAM.set(self.0);
    }
}

/// Re-raises on the pass thread a panic that a task raised on a helper.
fn reraise(team: &Team) {
    let panic = team.panic.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(panic) = panic {
        std::panic::resume_unwind(panic);
    }
}

/// Runs the pass `f` with the pool's threads beside it.
///
/// Called from outside the pool, `f` runs on the calling thread while `threads − 1` rayon
/// workers spin beside it as helpers: they take part in the loops the pass offers
/// ([`for_each_task`]), run any rayon work it hands out, and otherwise spin instead of going
/// to sleep between nodes (an idle rayon worker sleeps after a few microseconds, and waking it
/// took 20–70 µs here, per node; onnxruntime's threads spin between nodes in the same way).
/// The pass starts at once, helpers joining as they come; it used to be injected into the pool
/// (`rayon::scope` from outside), which cost a wake-up of a worker before anything ran, another
/// for the helper, and a third for the calling thread at the end (design.md, "Threads of a
/// pass"). Helpers are not waited for at the end. They stay a while ([`LINGER`]) for the next
/// pass: a sleeping worker took 0.1–0.2 ms to join an EfficientNet pass.
///
/// Called on a worker (a pass inside rayon work), `f` runs there and its loops use rayon.
pub(crate) fn on_pool<R>(f: impl FnOnce() -> R) -> R {
    if rayon::current_thread_index().is_some() || !TEAM.get().is_null() {
        return f();
    }
    let team = Arc::new(Team {
        job: AtomicPtr::new(std::ptr::null_mut()),
        offered: AtomicUsize::new(0),
        inside: AtomicUsize::new(0),
        done: AtomicBool::new(false),
        panic: Mutex::new(None),
    });
    lobby().push(Arc::clone(&team));
    // Posted before the helpers are counted, and a lingering helper counts itself out before
    // it looks for new passes (both SeqCst): either this pass sees it gone and spawns another,
    // or it sees this pass and stays (see `help`).
    POSTED.fetch_add(1, Ordering::SeqCst);
    let wanted = rayon::current_num_threads().saturating_sub(1);
    for _ in HELPERS.load(Ordering::SeqCst).min(wanted)..wanted {
        rayon::spawn(help);
    }
    // Released on return and on unwinding alike, so that no helper spins on after the pass.
    let _release = Release(&team);
    TEAM.set(Arc::as_ptr(&team));
    f()
}

/// How long a helper with no pass to help stays before it leaves its worker to sleep.
const LINGER: Duration = Duration::from_millis(2);

/// Passes in progress, newest last (helpers help the newest).
static LOBBY: Mutex<Vec<Arc<Team>>> = Mutex::new(Vec::new());
/// Passes started so far: a helper looks in the lobby when this changes.
static POSTED: AtomicUsize = AtomicUsize::new(0);
/// Helpers alive (helping or lingering), at most `threads − 1`.
static HELPERS: AtomicUsize = AtomicUsize::new(0);

fn lobby() -> std::sync::MutexGuard<'static, Vec<Arc<Team>>> {
    LOBBY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes one of the `threads − 1` helper places, if one is free.
fn take_place() -> bool {
    let most = rayon::current_num_threads().saturating_sub(1);
    HELPERS
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |h| {
            (h < most).then_some(h + 1)
        })
        .is_ok()
}

/// A helper's life (see [`on_pool`]): take part in the newest pass's loops, linger when there
/// is none, leave after [`LINGER`] without one.
fn help() {
    // Only an otherwise idle worker helps: one already helping (that picked up this job through
    // `rayon::yield_now` below) returns at once, and so does a job spawned while another
    // helper took the last place.
    if BUSY.replace(true) {
        return;
    }
    let _free = Free;
    if !take_place() {
        return;
    }
    let mut posted = usize::MAX;
    let mut team: Option<Arc<Team>> = None;
    let mut seen = 0;
    let mut idle = 0u32;
    let mut alone_since = Instant::now();
    loop {
        let now_posted = POSTED.load(Ordering::SeqCst);
        if now_posted != posted
            || team
                .as_ref()
                .is_some_and(|t| t.done.load(Ordering::Acquire))
        {
            posted = now_posted;
            team = lobby()
                .iter()
                .rev()
                .find(|t| !t.done.load(Ordering::Acquire))
                .cloned();
            seen = 0;
            alone_since = Instant::now();
        }
        if let Some(team) = &team {
            let offered = team.offered.load(Ordering::Acquire);
            if offered != seen {
                if let Some((job, _inside)) = team.enter() {
                    // A panicking task is handed to the pass thread, which re-raises it once
                    // its loop is over (a panic escaping a spawned job would abort the process).
                    if let Err(panic) =
                        std::panic::catch_unwind(AssertUnwindSafe(|| job.work(true)))
                    {
                        let mut slot = team.panic.lock().unwrap_or_else(|e| e.into_inner());
                        slot.get_or_insert(panic);
                        // Let the loop end: the tasks left are abandoned, the pass is failing.
                        job.abandon();
                    }
                }
                seen = offered;
                idle = 0;
                continue;
            }
        }
        if rayon::yield_now() == Some(rayon::Yield::Executed) {
            idle = 0;
        } else if idle < IDLE_SPINS {
            idle += 1;
            std::hint::spin_loop();
        } else {
            if team.is_none() && alone_since.elapsed() > LINGER {
                // Counted out before looking for new passes (see `on_pool`).
                HELPERS.fetch_sub(1, Ordering::SeqCst);
                if POSTED.load(Ordering::SeqCst) == posted || !take_place() {
                    return;
                }
                alone_since = Instant::now();
                continue;
            }
            // Idle for a while: let the OS run another thread on this core if one waits (the
            // pass's own thread, or another program); with nothing else runnable the call
            // returns at once and the helper keeps spinning.
            std::thread::yield_now();
        }
    }
}

/// Marks a helper's worker free again when it leaves (see [`help`]).
struct Free;

impl Drop for Free {
    fn drop(&mut self) {
        BUSY.set(false);
    }
}

/// Ends a pass for [`on_pool`]: the calling thread offers no more loops, helpers leave it.
struct Release<'a>(&'a Arc<Team>);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        TEAM.set(std::ptr::null());
        self.0.done.store(true, Ordering::Release);
        lobby().retain(|t| !Arc::ptr_eq(t, self.0));
    }
}

/// A raw output pointer that parallel tasks may share because each writes disjoint elements.
pub(crate) struct SharedOut<T = f32>(pub *mut T);
// SAFETY: only used to hand disjoint output regions to parallel tasks; see each use.
unsafe impl<T: Send> Send for SharedOut<T> {}
unsafe impl<T: Send> Sync for SharedOut<T> {}

// By hand: derived, they would ask `T: Clone` of the pointee, not needed to copy a pointer.
impl<T> Clone for SharedOut<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for SharedOut<T> {}

impl<T> SharedOut<T> {
    /// The pointer. A method (not the `.0` field) so closures capture the whole `Sync` wrapper.
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

    /// A pass returns its value, its parallel work runs (also on the spinning helpers), and a
    /// pass that panics passes the panic on instead of leaving its helpers spinning, which
    /// would hang the scope that waits for them.
    #[test]
    fn passes_return_and_panics_do_not_hang() {
        let sum: u64 = on_pool(|| (0..10_000u64).into_par_iter().sum());
        assert_eq!(sum, 10_000 * 9_999 / 2);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let r = std::panic::catch_unwind(|| on_pool(|| -> u32 { panic!("a failing pass") }));
            tx.send(r.is_err()).ok();
        });
        let panicked = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the panicking pass hung");
        assert!(panicked);
    }

    /// Passes from several threads at once, back to back, each get their loops done (helpers
    /// move from pass to pass and never outnumber `threads − 1`), and once the passes stop the
    /// helpers leave their workers after lingering.
    #[test]
    fn helpers_serve_concurrent_passes_then_leave() {
        let most = rayon::current_num_threads().saturating_sub(1);
        let callers: Vec<_> = (0..3)
            .map(|c| {
                std::thread::spawn(move || {
                    for pass in 0..40usize {
                        let sum = on_pool(|| {
                            let sum = AtomicU64::new(0);
                            for_each_task(16, |t| {
                                assert!(HELPERS.load(Ordering::SeqCst) <= most);
                                sum.fetch_add((t * (c + 1) + pass) as u64, Ordering::Relaxed);
                            });
                            sum.load(Ordering::Relaxed)
                        });
                        assert_eq!(sum, (120 * (c + 1) + 16 * pass) as u64);
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.join().expect("a caller's passes");
        }
        let start = Instant::now();
        while HELPERS.load(Ordering::SeqCst) != 0 {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "helpers still there long after the last pass"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Offered loops run every task exactly once, back to back (a helper must not mistake a
    /// new loop at the same stack address for the one it finished), nested loops run too, and
    /// a task that panics ends the pass with that panic instead of a hang.
    #[test]
    fn offered_loops_run_every_task_once() {
        for tasks in [0, 1, 2, 3, 17, 1000] {
            let total = on_pool(|| {
                let mut total = 0;
                for round in 0..50u64 {
                    let hits: Vec<AtomicU64> = (0..tasks).map(|_| AtomicU64::new(0)).collect();
                    for_each_task(tasks, |t| {
                        hits[t].fetch_add(round + 1, Ordering::Relaxed);
                        // A loop inside a task runs on rayon, not on the team.
                        let inner = AtomicU64::new(0);
                        for_each_task(3, |_| {
                            inner.fetch_add(1, Ordering::Relaxed);
                        });
                        assert_eq!(inner.load(Ordering::Relaxed), 3);
                    });
                    assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == round + 1));
                    total += tasks;
                }
                total
            });
            assert_eq!(total, 50 * tasks);
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let r = std::panic::catch_unwind(|| {
                on_pool(|| {
                    for_each_task(64, |t| {
                        if t == 40 {
                            panic!("a failing task");
                        }
                        std::thread::sleep(Duration::from_micros(100));
                    })
                })
            });
            tx.send(r.is_err()).ok();
        });
        let panicked = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the pass with a panicking task hung");
        assert!(panicked);
    }

    /// Shrinking claims cover every item exactly once in contiguous ranges: the pass
    /// thread's from the front and the helpers' from the back, the first claim
    /// `items / (2·threads)` long, each of a thread's later claims no longer than its last.
    /// Off a pass the loop runs on rayon and still covers every item once.
    #[test]
    fn guided_claims_cover_every_item_once_and_shrink() {
        let threads = rayon::current_num_threads();
        for (items, least) in [(1000, 3), (37, 1), (5, 8), (1, 1), (0, 1)] {
            for _ in 0..10 {
                let pass_thread = std::thread::current().id();
                let claims: Mutex<Vec<(Range<usize>, bool)>> = Mutex::new(Vec::new());
                on_pool(|| {
                    for_each_guided(items, least, |r| {
                        let mine = std::thread::current().id() == pass_thread;
                        claims.lock().unwrap().push((r, mine));
                        std::thread::sleep(Duration::from_micros(20));
                    })
                });
                let claims = claims.into_inner().unwrap();
                let mut hits = vec![0; items];
                for (r, _) in &claims {
                    assert!(!r.is_empty(), "an empty claim");
                    hits[r.clone()].iter_mut().for_each(|h| *h += 1);
                }
                assert!(hits.iter().all(|&h| h == 1), "{items} items: {claims:?}");
                for mine in [true, false] {
                    let sizes: Vec<usize> = claims
                        .iter()
                        .filter(|c| c.1 == mine)
                        .map(|c| c.0.len())
                        .collect();
                    assert!(
                        sizes.windows(2).all(|w| w[1] <= w[0]),
                        "claims grow: {claims:?}"
                    );
                }
                if items > least && threads > 1 {
                    // The first claim (whoever made it) saw all the items.
                    let largest = claims.iter().map(|c| c.0.len()).max().unwrap_or(0);
                    assert_eq!(largest, items.div_ceil(2 * threads).max(least));
                    assert!(claims
                        .iter()
                        .filter(|c| !c.1)
                        .all(|c| claims.iter().filter(|p| p.1).all(|p| p.0.end <= c.0.start)));
                }
            }
            let hits: Vec<AtomicU64> = (0..items).map(|_| AtomicU64::new(0)).collect();
            for_each_guided(items, least, |r| {
                r.for_each(|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                })
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        }
    }

    /// The pass thread claims a loop's tasks from the front and helpers from the back, so each
    /// thread runs one contiguous run of the tasks (the locality `Job` is for). With one thread
    /// in the pool there is no helper and the pass thread runs them all.
    #[test]
    fn the_pass_thread_runs_the_first_tasks_and_helpers_the_last() {
        let tasks = 40;
        let mut helped = false;
        for _ in 0..20 {
            let pass_thread = std::thread::current().id();
            let on_pass_thread: Vec<bool> = on_pool(|| {
                let mine: Vec<AtomicBool> = (0..tasks).map(|_| AtomicBool::new(false)).collect();
                for_each_task(tasks, |t| {
                    mine[t].store(
                        std::thread::current().id() == pass_thread,
                        Ordering::Relaxed,
                    );
                    std::thread::sleep(Duration::from_micros(200));
                });
                mine.iter().map(|m| m.load(Ordering::Relaxed)).collect()
            });
            let first = on_pass_thread.iter().take_while(|&&m| m).count();
            assert!(
                on_pass_thread[first..].iter().all(|&m| !m),
                "the pass thread's tasks are not the first ones: {on_pass_thread:?}"
            );
            helped |= first < tasks;
            if helped {
                break;
            }
        }
        assert!(
            helped || rayon::current_num_threads() < 2,
            "no helper took part in 20 passes of {tasks} tasks"
        );
    }
}
