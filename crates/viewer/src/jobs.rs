//! Long jobs (filter patterns): run in the background one at a time, report progress, keep
//! their results, and stop when nobody wants them any more.
//!
//! A job is wanted while a request waits for it (`wait=1`) or while some page asked about it
//! within the lease (the page polls a few times a second while it shows the job). A job
//! neither waited for nor polled for a lease is cancelled at its next step: the page that
//! wanted it went away, or moved on to another view.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use convscope::progress::Progress;
use serde::Serialize;
use tokio::sync::{watch, Semaphore};

use crate::api::ApiError;

/// Where a job is.
#[derive(Clone, Debug, PartialEq)]
pub enum JobState {
    /// Waiting for the job before it.
    Queued,
    /// Computing.
    Running,
    /// Finished: the PNG.
    Done(Arc<Vec<u8>>),
    /// Failed with this error.
    Failed(ApiError),
    /// Stopped because nobody wanted it.
    Cancelled,
}

impl JobState {
    fn name(&self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done(_) => "done",
            JobState::Failed(_) => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    fn finished(&self) -> bool {
        matches!(
            self,
            JobState::Done(_) | JobState::Failed(_) | JobState::Cancelled
        )
    }
}

/// One job.
pub struct Job {
    key: String,
    what: String,
    done: AtomicU64,
    total: AtomicU64,
    state: watch::Sender<JobState>,
    seen: Mutex<Instant>,
    waiters: AtomicUsize,
    cancel: AtomicBool,
    lease: Duration,
    started: Instant,
}

/// What `/api/jobs` and a polling page see of a job.
#[derive(Clone, Debug, Serialize)]
pub struct JobStatus {
    /// The job's key (what it computes).
    pub job: String,
    /// A description, e.g. `filter 17 of block3_conv1`.
    pub what: String,
    /// `queued`, `running`, `done`, `failed`, `cancelled`.
    pub state: &'static str,
    /// Steps done.
    pub done: u64,
    /// Steps in all (0 until known).
    pub total: u64,
    /// Seconds since the job was asked for.
    pub seconds: f64,
    /// The error of a failed job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Job {
    /// The job's status now.
    pub fn status(&self) -> JobStatus {
        let state = self.state.borrow().clone();
        JobStatus {
            job: self.key.clone(),
            what: self.what.clone(),
            state: state.name(),
            done: self.done.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
            seconds: self.started.elapsed().as_secs_f64(),
            error: match state {
                JobState::Failed(e) => Some(e.message),
                _ => None,
            },
        }
    }

    /// The state now.
    pub fn state(&self) -> JobState {
        self.state.borrow().clone()
    }

    /// Someone asked about the job: it stays wanted for another lease.
    pub fn touch(&self) {
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// Asks the job to stop at its next step.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Whether the job should stop: cancelled, or neither waited for nor polled for a lease.
    pub fn abandoned(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
            || (self.waiters.load(Ordering::SeqCst) == 0
                && self
                    .seen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .elapsed()
                    > self.lease)
    }

    /// Waits until the job finishes, counting as a waiter meanwhile (a request dropped because
    /// its client went away stops counting).
    pub async fn finished(self: &Arc<Self>) -> JobState {
        struct Waiting<'a>(&'a Job);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.waiters.fetch_sub(1, Ordering::SeqCst);
                self.0.touch();
            }
        }
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(self);
        let mut rx = self.state.subscribe();
        let state = rx.wait_for(JobState::finished).await.map(|s| s.clone());
        state.unwrap_or(JobState::Cancelled)
    }
}

/// The job's view of its progress, handed to the facade.
struct JobProgress(Arc<Job>);

impl Progress for JobProgress {
    fn start(&self, len: u64, _what: &str) {
        self.0.total.store(len, Ordering::Relaxed);
    }

    fn set(&self, done: u64) {
        self.0.done.store(done, Ordering::Relaxed);
    }

    fn cancelled(&self) -> bool {
        self.0.abandoned()
    }
}

/// Finished results kept at most.
const KEPT_RESULTS: usize = 512;

/// The jobs and their results.
pub struct Jobs {
    lease: Duration,
    jobs: Mutex<HashMap<String, Arc<Job>>>,
    results: Mutex<VecDeque<(String, Arc<Vec<u8>>)>>,
    lane: Arc<Semaphore>,
}

impl Jobs {
    /// Jobs that run one at a time and are cancelled after `lease` without interest.
    pub fn new(lease: Duration) -> Jobs {
        Jobs {
            lease,
            jobs: Mutex::new(HashMap::new()),
            results: Mutex::new(VecDeque::new()),
            lane: Arc::new(Semaphore::new(1)),
        }
    }

    /// The kept result of `key`.
    pub fn result(&self, key: &str) -> Option<Arc<Vec<u8>>> {
        let results = self.results.lock().unwrap_or_else(|e| e.into_inner());
        results
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    /// The job of `key`, started with `work` when there is none running (a failed or
    /// cancelled one is started again).
    pub fn start<F>(self: &Arc<Self>, key: &str, what: &str, work: F) -> Arc<Job>
    where
        F: FnOnce(&dyn Progress) -> Result<Vec<u8>, ApiError> + Send + 'static,
    {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(job) = jobs.get(key) {
            if !matches!(job.state(), JobState::Failed(_) | JobState::Cancelled) {
                job.touch();
                return job.clone();
            }
        }
        let job = Arc::new(Job {
            key: key.to_string(),
            what: what.to_string(),
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            state: watch::Sender::new(JobState::Queued),
            seen: Mutex::new(Instant::now()),
            waiters: AtomicUsize::new(0),
            cancel: AtomicBool::new(false),
            lease: self.lease,
            started: Instant::now(),
        });
        jobs.insert(key.to_string(), job.clone());
        drop(jobs);
        let (jobs, running) = (self.clone(), job.clone());
        tokio::spawn(async move {
            let permit = jobs.lane.clone().acquire_owned().await;
            if running.abandoned() {
                running.state.send_replace(JobState::Cancelled);
                return;
            }
            running.state.send_replace(JobState::Running);
            let progress = JobProgress(running.clone());
            let outcome = tokio::task::spawn_blocking(move || {
                let r = work(&progress);
                drop(permit);
                r
            })
            .await;
            let state = match outcome {
                Ok(Ok(png)) => {
                    let png = Arc::new(png);
                    jobs.keep(&running.key, png.clone());
                    JobState::Done(png)
                }
                Ok(Err(e)) if e.status == 409 => JobState::Cancelled,
                Ok(Err(e)) => JobState::Failed(e),
                Err(_) => JobState::Failed(ApiError::internal("the job failed unexpectedly")),
            };
            running.state.send_replace(state);
        });
        job
    }

    /// The job of `key`, if any.
    pub fn get(&self, key: &str) -> Option<Arc<Job>> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.get(key).cloned()
    }

    /// Every job's status, newest first.
    pub fn list(&self) -> Vec<JobStatus> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<JobStatus> = jobs.values().map(|j| j.status()).collect();
        all.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
        all
    }

    fn keep(&self, key: &str, png: Arc<Vec<u8>>) {
        let mut results = self.results.lock().unwrap_or_else(|e| e.into_inner());
        results.retain(|(k, _)| k != key);
        results.push_back((key.to_string(), png));
        while results.len() > KEPT_RESULTS {
            results.pop_front();
        }
    }
}
