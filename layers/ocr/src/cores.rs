//! The cores a page may use now. A page read alone takes every core the engine may use;
//! pages read side by side, in one process or in several, share them. Each core of the
//! machine is a lock file in one folder that every engine on it uses (on Lambda, the
//! environment's own `/tmp`); a page holds an advisory lock (`flock`) on each core it
//! reads with, and the kernel lets go of them when the page ends or its process dies, so
//! a killed reader never keeps a core.
//!
//! A page that finds every core taken waits, and says so: it holds a shared lock on the
//! folder's `waiting` file. A page reading on several cores gives one back at its next
//! recognition batch when someone waits, so the second page starts within a crop's time
//! rather than after the whole first page (two pages on one core each read faster
//! together than one after the other on two).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// How often a page that found every core taken looks again. A page takes 0.2-3 s to
/// read, so a few milliseconds' wait is lost in it, and a sleeping waiter costs nothing.
const WAIT: Duration = Duration::from_millis(3);

/// The file waiting pages hold a shared lock on.
const WAITING: &str = "waiting";

/// The machine's cores as lock files, and how many of them one page may take.
#[derive(Debug)]
pub struct Cores {
    /// `None` when the folder cannot be used: every page then takes its full budget
    /// unshared, as it would with no other reader about.
    dir: Option<PathBuf>,
    /// The cores there are to share: the machine's (the lock files' count).
    machine: usize,
    /// The most one page takes: the engine's thread budget.
    budget: usize,
}

/// Cores held for one page; they are given back when it is dropped, or one by one to a
/// page that waits ([`Claim::give_back`]).
#[derive(Debug)]
pub struct Claim {
    /// The locked core files; empty when unshared.
    held: Mutex<Vec<File>>,
    /// The folder's `waiting` file, to see whether another page waits; `None` unshared.
    waiting: Option<File>,
    /// Cores counted when nothing is locked (unshared).
    unshared: usize,
}

impl Claim {
    fn unshared(count: usize) -> Self {
        Self { held: Mutex::new(Vec::new()), waiting: None, unshared: count }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Vec<File>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Threads the page may run now: at least one.
    pub fn cores(&self) -> usize {
        match self.waiting {
            Some(_) => self.held().len(),
            None => self.unshared,
        }
    }

    /// Gives one core back if another page waits for one and this page keeps at least
    /// one; says whether it did.
    pub fn give_back(&self) -> bool {
        let Some(waiting) = &self.waiting else {
            return false;
        };
        let mut held = self.held();
        if held.len() < 2 {
            return false;
        }
        // Someone waits when the exclusive lock cannot be had next to their shared one.
        match waiting.try_lock() {
            Ok(()) => {
                let _ = waiting.unlock();
                false
            }
            Err(TryLockError::WouldBlock) => {
                if let Some(core) = held.pop() {
                    let _ = core.unlock();
                }
                true
            }
            Err(TryLockError::Error(_)) => false,
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        for file in self.held().iter() {
            let _ = file.unlock();
        }
    }
}

/// Whether the folder's failure was logged already: once per process is enough.
static WARNED: AtomicBool = AtomicBool::new(false);

impl Cores {
    /// `machine` cores shared through lock files in `dir` (made if missing), a page taking
    /// at most `budget` of them.
    pub fn new(dir: &Path, machine: usize, budget: usize) -> Self {
        let machine = machine.max(1);
        let dir = match std::fs::create_dir_all(dir) {
            Ok(()) => Some(dir.to_owned()),
            Err(error) => {
                warn_once(dir, &error);
                None
            }
        };
        Self { dir, machine, budget: budget.clamp(1, machine) }
    }

    /// Every page takes `budget` cores, with no sharing (one page at a time, as a bench
    /// or a test reads them).
    pub fn unshared(budget: usize) -> Self {
        Self { dir: None, machine: budget.max(1), budget: budget.max(1) }
    }

    /// The most one page takes.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// The cores free now, up to the budget; when none is free, the first to come free.
    pub fn claim(&self) -> Claim {
        let Some(dir) = &self.dir else {
            return Claim::unshared(self.budget);
        };
        match self.claim_in(dir) {
            Ok(claim) => claim,
            Err(error) => {
                warn_once(dir, &error);
                Claim::unshared(self.budget)
            }
        }
    }

    fn claim_in(&self, dir: &Path) -> std::io::Result<Claim> {
        let waiting = open_lock(&dir.join(WAITING))?;
        let mut announced = false;
        loop {
            let mut held = Vec::with_capacity(self.budget);
            for core in 0..self.machine {
                if held.len() == self.budget {
                    break;
                }
                let file = open_lock(&dir.join(format!("core-{core}")))?;
                match file.try_lock() {
                    Ok(()) => held.push(file),
                    Err(TryLockError::WouldBlock) => {}
                    Err(TryLockError::Error(error)) => return Err(error),
                }
            }
            if !held.is_empty() {
                if announced {
                    waiting.unlock()?;
                }
                return Ok(Claim { held: Mutex::new(held), waiting: Some(waiting), unshared: 0 });
            }
            if !announced {
                // Blocks only while a reader checks, for a moment.
                waiting.lock_shared()?;
                announced = true;
            }
            std::thread::sleep(WAIT);
        }
    }
}

/// A lock file, opened to be locked: read-only when it exists (a lock needs only a
/// descriptor, so another user's engine can lock a file it may only read), made if not.
fn open_lock(path: &Path) -> std::io::Result<File> {
    match File::open(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            OpenOptions::new().create(true).truncate(false).write(true).open(path)
        }
        opened => opened,
    }
}

fn warn_once(dir: &Path, error: &std::io::Error) {
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(dir = %dir.display(), %error, "the cores' lock files cannot be used: each page takes the engine's full thread budget");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("docusnap-cores-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_lone_page_takes_every_core_and_a_second_shares_them() {
        let dir = folder("share");
        let cores = Cores::new(&dir, 4, 4);
        let first = cores.claim();
        assert_eq!(first.cores(), 4);
        assert!(!first.give_back(), "no one waits");
        drop(first);
        let budget_two = Cores::new(&dir, 4, 2);
        let (a, b) = (budget_two.claim(), budget_two.claim());
        assert_eq!((a.cores(), b.cores()), (2, 2));
        // Another process's engine, or this one's, finds none free and waits for the first
        // to come free.
        let other = dir.clone();
        let waiter = std::thread::spawn(move || Cores::new(&other, 4, 4).claim().cores());
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "every core is taken: the third page waits");
        drop(a);
        assert_eq!(waiter.join().unwrap(), 2, "it takes the two that came free");
        drop(b);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_page_on_every_core_gives_one_to_a_page_that_waits() {
        let dir = folder("give");
        let cores = Cores::new(&dir, 2, 2);
        let first = cores.claim();
        assert_eq!(first.cores(), 2);
        let other = dir.clone();
        let waiter = std::thread::spawn(move || Cores::new(&other, 2, 2).claim().cores());
        // Until the waiter is seen waiting, there is nothing to give.
        let started = std::time::Instant::now();
        while !first.give_back() {
            assert!(started.elapsed() < Duration::from_secs(10), "the waiter never showed");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(first.cores(), 1);
        assert_eq!(waiter.join().unwrap(), 1, "the waiter reads on the core given back");
        assert!(!first.give_back(), "the last core is kept");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_folder_that_cannot_be_made_leaves_each_page_its_budget() {
        let file = folder("file");
        std::fs::write(&file, b"not a folder").unwrap();
        let cores = Cores::new(&file.join("cores"), 2, 2);
        assert_eq!((cores.claim().cores(), cores.claim().cores()), (2, 2));
        let _ = std::fs::remove_file(file);
    }
}
