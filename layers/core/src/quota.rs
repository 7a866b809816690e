//! Who pays, and how much each may use: per-principal quotas, checked before any work.
//!
//! A **principal** is who a request is counted against: the verified token's `sub` when
//! the HTTP API has a JWT authorizer, else v1's client id, else (an open v2) the caller's
//! address. Two quotas apply to it:
//! - **tasks in flight**: a set of task ids on one item, grown by a conditional update
//!   (`size(tasks) < limit`), so concurrent creates can never pass the limit. Ended tasks
//!   are not removed one by one (a task may end in any of four functions, or never be read
//!   again); when the set is full, the members whose tasks have ended or timed out are
//!   pruned and the add tried once more.
//! - **pages per day** (UTC): a counter per day, grown by a conditional `ADD`, expiring by
//!   TTL two days later.
//!
//! Limits come from the deployment (template parameters), and an operator may set one
//! principal's own on its `limits` item. A refusal stores nothing; an admission that is
//! not followed by a task ([`Ticket`]) is undone.

use crate::clock::Timestamp;
use crate::codes::{ErrorCode, Failure};
use crate::ids::ClientId;
use crate::store::{StoreError, TaskStore};
use crate::task::{TaskId, TaskStatus};

pub use crate::config::QuotaLimits;
pub use crate::ids::{Principal, MAX_PRINCIPAL_BYTES};
pub use crate::store::{Hold, QuotaOverride, QuotaStore};

/// Seconds a day's page counter is kept: its day and the next, for late readers.
const PAGE_COUNTER_SECS: Timestamp = 2 * DAY_SECS;
const DAY_SECS: Timestamp = 86_400;

impl QuotaLimits {
    fn with(self, own: Option<QuotaOverride>) -> Self {
        let own = own.unwrap_or_default();
        Self {
            tasks_in_flight: own.tasks_in_flight.unwrap_or(self.tasks_in_flight),
            pages_per_day: own.pages_per_day.unwrap_or(self.pages_per_day),
        }
    }
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaRefusal {
    TasksInFlight { limit: u32 },
    PagesPerDay { limit: u32 },
}

impl QuotaRefusal {
    /// v2's answer (429 `QUOTA_EXCEEDED`). v1 answers a full set of tasks in flight with
    /// the code its clients know, `TOO_MANY_TASKS`.
    pub fn failure(self) -> Failure {
        match self {
            QuotaRefusal::TasksInFlight { limit } => Failure::new(
                ErrorCode::QuotaExceeded,
                format!("{limit} tasks are in flight already; wait for one to end"),
            ),
            QuotaRefusal::PagesPerDay { limit } => Failure::new(
                ErrorCode::QuotaExceeded,
                format!("this task would pass today's quota of {limit} pages (UTC)"),
            ),
        }
    }
}

/// An admission: what to undo if the task is not made after all.
#[derive(Debug)]
#[must_use = "undo the admission when the task is not made"]
pub struct Ticket {
    who: Principal,
    task: String,
    added: bool,
    day: String,
    pages: u32,
}

impl Ticket {
    /// Takes the admission back: the task was not made (another refusal, a lost race, a
    /// store failure). Best effort: a task left held is pruned when the set is full.
    pub async fn undo<Q: QuotaStore>(self, quotas: &Q) {
        if self.added {
            if let Err(e) = quotas.release(&self.who, std::slice::from_ref(&self.task)).await {
                tracing::warn!(error = %e, "releasing an unused admission failed");
            }
        }
        if self.pages > 0 {
            if let Err(e) = quotas.uncount_pages(&self.who, &self.day, self.pages).await {
                tracing::warn!(error = %e, "taking back an unused admission's pages failed");
            }
        }
    }
}

/// How a task is held in the set: when it was admitted, its sort key, then its client id
/// (which may hold any character, so it comes last).
fn member(task: &TaskId, now: Timestamp) -> String {
    format!("{now}/{}/{}", task.sort_key(), task.client_id.as_str())
}

fn task_of(member: &str) -> Option<(Timestamp, TaskId)> {
    let (admitted, rest) = member.split_once('/')?;
    let (sort_key, client) = rest.split_once('/')?;
    Some((admitted.parse().ok()?, TaskId::from_sort_key(ClientId::stored(client).ok()?, sort_key)?))
}

/// A held task whose item is not there yet is being made: an admission comes before the
/// task's item, and making it takes well under a second, within the upload function's
/// 29-second timeout. Held longer without an item, its making failed and was not undone.
const MAKING_SECS: Timestamp = 60;

/// The UTC day of `now`, as `YYYY-MM-DD`.
pub fn utc_day(now: Timestamp) -> String {
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = now.div_euclid(DAY_SECS) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Admits `task` of `pages` pages for `who` under `limits` (the deployment's, or the
/// principal's own), or says which quota refuses it. Nothing is kept for a refusal.
pub async fn admit<Q: QuotaStore, T: TaskStore>(
    quotas: &Q, tasks: &T, who: &Principal, task: &TaskId, pages: u32, limits: QuotaLimits, now: Timestamp,
) -> Result<Result<Ticket, QuotaRefusal>, StoreError> {
    let limits = limits.with(quotas.own_limits(who).await?);
    let mut ticket = Ticket { who: who.clone(), task: member(task, now), added: false, day: utc_day(now), pages: 0 };
    if limits.tasks_in_flight > 0 {
        let limit = limits.tasks_in_flight;
        let mut hold = quotas.hold(who, &ticket.task, limit).await?;
        if hold == Hold::Full && prune(quotas, tasks, who, now).await? > 0 {
            hold = quotas.hold(who, &ticket.task, limit).await?;
        }
        match hold {
            Hold::Full => return Ok(Err(refused(who, QuotaRefusal::TasksInFlight { limit }))),
            Hold::Added => ticket.added = true,
            Hold::AlreadyHeld => {}
        }
    }
    if limits.pages_per_day > 0 {
        let limit = limits.pages_per_day;
        let expires = now - now.rem_euclid(DAY_SECS) + PAGE_COUNTER_SECS;
        if !quotas.count_pages(who, &ticket.day, pages, limit, expires).await? {
            ticket.undo(quotas).await;
            return Ok(Err(refused(who, QuotaRefusal::PagesPerDay { limit })));
        }
        ticket.pages = pages;
    }
    Ok(Ok(ticket))
}

/// A refusal, logged and counted (`Refusals`), whichever API answers it.
fn refused(who: &Principal, refusal: QuotaRefusal) -> QuotaRefusal {
    tracing::info!(principal = %who, ?refusal, "quota refused a task");
    crate::metrics::refused(ErrorCode::QuotaExceeded);
    refusal
}

/// Removes the principal's held tasks that are no longer in flight: ended, timed out,
/// gone (past [`MAKING_SECS`]), or unreadable. Returns how many it removed.
async fn prune<Q: QuotaStore, T: TaskStore>(
    quotas: &Q, tasks: &T, who: &Principal, now: Timestamp,
) -> Result<usize, StoreError> {
    let mut done = Vec::new();
    for held in quotas.held(who).await? {
        let in_flight = match task_of(&held) {
            Some((admitted, id)) => match tasks.get(&id, now).await? {
                Some(task) => task.status() == TaskStatus::Processing && !task.is_timed_out(now),
                None => now < admitted + MAKING_SECS,
            },
            None => false,
        };
        if !in_flight {
            done.push(held);
        }
    }
    if !done.is_empty() {
        quotas.release(who, &done).await?;
    }
    Ok(done.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::{MemoryQuotaStore, MemoryTaskStore};
    use crate::store::Outcome;
    use crate::task::Task;
    use crate::TaskType;

    const OPEN_LIMITS: QuotaLimits = QuotaLimits { tasks_in_flight: 2, pages_per_day: 5 };

    fn task(n: u32) -> TaskId {
        TaskId::new(ClientId::parse("alice/phone").unwrap(), TaskType::Doc, format!("{n:064x}"))
    }

    #[test]
    fn days_are_utc_dates() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(1_796_601_599), "2026-12-06");
        assert_eq!(utc_day(1_796_601_600), "2026-12-07");
        assert_eq!(utc_day(951_782_400), "2000-02-29");
    }

    #[test]
    fn principals_are_bounded_and_printable() {
        assert_eq!(Principal::subject("abc").unwrap().as_str(), "sub:abc");
        assert!(Principal::subject("").is_none());
        assert!(Principal::subject("a\nb").is_none());
        assert!(Principal::subject(&"x".repeat(MAX_PRINCIPAL_BYTES)).is_none());
        let client = ClientId::parse("c/1").unwrap();
        let (at, task) = task_of(&member(&TaskId::new(client.clone(), TaskType::Form, "ab"), 7)).unwrap();
        assert_eq!((at, task.client_id), (7, client));
    }

    #[tokio::test]
    async fn tasks_in_flight_and_pages_are_refused_past_their_limits_and_ended_tasks_make_room() {
        let (quotas, tasks) = (MemoryQuotaStore::default(), MemoryTaskStore::default());
        let who = Principal::subject("alice").unwrap();
        let now = 1_796_600_000;
        for n in 0..2 {
            let ticket = admit(&quotas, &tasks, &who, &task(n), 1, OPEN_LIMITS, now).await.unwrap().unwrap();
            assert!(ticket.added);
            tasks.create(&Task::new_processing(task(n), now)).await.unwrap();
        }
        // The third in flight is refused, and nothing is kept for it.
        let refused = admit(&quotas, &tasks, &who, &task(2), 1, OPEN_LIMITS, now).await.unwrap();
        assert_eq!(refused.unwrap_err(), QuotaRefusal::TasksInFlight { limit: 2 });
        assert_eq!(quotas.held(&who).await.unwrap().len(), 2);
        assert_eq!(quotas.pages(&who, &utc_day(now)), 2);
        // The same task admitted twice at once (two identical requests) is held once, and
        // undoing the one that did not make it releases nothing.
        let again = admit(&quotas, &tasks, &who, &task(1), 1, OPEN_LIMITS, now).await.unwrap().unwrap();
        assert!(!again.added);
        again.undo(&quotas).await;
        assert_eq!(quotas.held(&who).await.unwrap().len(), 2, "undoing a repeat releases nothing");

        // One ends: its place is pruned and taken.
        tasks.finish(&task(0), Outcome::Failed(ErrorCode::OcrFailure)).await.unwrap();
        let third = admit(&quotas, &tasks, &who, &task(2), 2, OPEN_LIMITS, now).await.unwrap().unwrap();
        assert!(third.added);
        tasks.create(&Task::new_processing(task(2), now)).await.unwrap();
        // Five pages today: a task of two more is refused, and its hold undone.
        tasks.finish(&task(1), Outcome::Failed(ErrorCode::OcrFailure)).await.unwrap();
        let over = admit(&quotas, &tasks, &who, &task(3), 2, OPEN_LIMITS, now).await.unwrap();
        assert_eq!(over.unwrap_err(), QuotaRefusal::PagesPerDay { limit: 5 });
        assert!(!quotas.held(&who).await.unwrap().contains(&member(&task(3), now)));
        assert_eq!(quotas.pages(&who, &utc_day(now)), 4);
        // Tomorrow counts afresh; another principal never shared the counts.
        assert!(admit(&quotas, &tasks, &who, &task(3), 2, OPEN_LIMITS, now + DAY_SECS).await.unwrap().is_ok());
        let bob = Principal::subject("bob").unwrap();
        assert!(admit(&quotas, &tasks, &bob, &task(4), 5, OPEN_LIMITS, now).await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn an_admission_whose_task_is_being_made_holds_its_place_until_its_making_must_have_failed() {
        let (quotas, tasks) = (MemoryQuotaStore::default(), MemoryTaskStore::default());
        let who = Principal::subject("alice").unwrap();
        let one = QuotaLimits { tasks_in_flight: 1, pages_per_day: 0 };
        let first = admit(&quotas, &tasks, &who, &task(0), 1, one, 100).await.unwrap().unwrap();
        assert!(first.added, "held; its task's item is not written yet");
        let during = admit(&quotas, &tasks, &who, &task(1), 1, one, 100 + MAKING_SECS - 1).await.unwrap();
        assert_eq!(during.unwrap_err(), QuotaRefusal::TasksInFlight { limit: 1 });
        // Its making never finished (the function died before undoing): the place frees.
        assert!(admit(&quotas, &tasks, &who, &task(1), 1, one, 100 + MAKING_SECS).await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn a_principal_s_own_limits_replace_the_deployment_s() {
        let (quotas, tasks) = (MemoryQuotaStore::default(), MemoryTaskStore::default());
        let who = Principal::subject("big-customer").unwrap();
        quotas.set_own_limits(&who, QuotaOverride { tasks_in_flight: None, pages_per_day: Some(100) });
        let ticket = admit(&quotas, &tasks, &who, &task(0), 50, OPEN_LIMITS, 0).await.unwrap().unwrap();
        ticket.undo(&quotas).await;
        assert_eq!(quotas.pages(&who, &utc_day(0)), 0, "undone pages are taken back");
        assert!(quotas.held(&who).await.unwrap().is_empty());
        // 0 is no limit.
        let unlimited = QuotaLimits { tasks_in_flight: 0, pages_per_day: 0 };
        let other = Principal::subject("other").unwrap();
        for n in 0..20 {
            assert!(admit(&quotas, &tasks, &other, &task(n), 1000, unlimited, 0).await.unwrap().is_ok());
        }
    }
}
