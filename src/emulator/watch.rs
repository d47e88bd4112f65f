//! Watches each disk-backed account's root (`--root DIR`) with inotify, so an edit made there by
//! any program becomes a Dropbox change: a new rev, a journal entry, longpolls and webhooks
//! told, as the Dropbox client would sync it. Events are gathered until the disk is quiet for
//! a moment (an editor's save is several), then each path is compared with the disk
//! (`tree::sync`).

use super::Emulator;
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use std::collections::{BTreeSet, HashMap};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// How long the disk must be quiet before the gathered paths are synced.
const QUIET_MS: i64 = 50;
/// How often a watcher with nothing to do checks whether it should stop.
const IDLE_MS: i64 = 250;
/// The longest events are gathered before the paths are synced.
const GATHER_MAX_MS: u128 = 1000;

/// Stops the watchers when dropped.
pub struct Watching(Arc<AtomicBool>);

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Starts a watcher thread per disk-backed account; they stop when the guard is dropped.
pub fn start(emu: &Emulator) -> Watching {
    let stop = Arc::new(AtomicBool::new(false));
    let roots: Vec<(usize, PathBuf)> = emu
        .world()
        .accounts
        .iter()
        .enumerate()
        .filter_map(|(i, a)| a.ns.disk_root().map(|r| (i, r.to_owned())))
        .collect();
    for (account, root) in roots {
        let started = Watcher::new(&root, stop.clone()).and_then(|w| {
            let emu = emu.clone();
            std::thread::Builder::new()
                .name("emulator-watch".into())
                .spawn(move || w.run(emu, account))
        });
        if let Err(e) = started {
            tracing::warn!(root = %root.display(), error = %e,
                "cannot watch the root: edits made there are seen at the next restart");
        }
    }
    Watching(stop)
}

struct Watcher {
    fd: OwnedFd,
    stop: Arc<AtomicBool>,
    root: PathBuf,
    /// Watch descriptor → the folder's display path (`""` for the root).
    dirs: HashMap<i32, String>,
}

impl Watcher {
    fn new(root: &Path, stop: Arc<AtomicBool>) -> std::io::Result<Watcher> {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
        let mut w = Watcher {
            fd,
            stop,
            root: root.to_owned(),
            dirs: HashMap::new(),
        };
        w.watch_tree("");
        Ok(w)
    }

    /// Watches the folder `display` and every folder under it.
    fn watch_tree(&mut self, display: &str) {
        let path = self.root.join(display.trim_start_matches('/'));
        let flags = WatchFlags::CREATE
            | WatchFlags::CLOSE_WRITE
            | WatchFlags::DELETE
            | WatchFlags::MOVED_FROM
            | WatchFlags::MOVED_TO
            | WatchFlags::ATTRIB
            | WatchFlags::ONLYDIR
            | WatchFlags::DONT_FOLLOW;
        match inotify::add_watch(self.fd.as_fd(), &path, flags) {
            Ok(wd) => {
                self.dirs.insert(wd, display.to_owned());
            }
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "cannot watch a folder");
                return;
            }
        }
        let Ok(entries) = std::fs::read_dir(&path) else {
            return;
        };
        for entry in entries.flatten() {
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if let (true, Some(name)) = (is_dir, entry.file_name().to_str()) {
                self.watch_tree(&format!("{display}/{name}"));
            }
        }
    }

    /// Whether events are ready within `ms`.
    fn wait(&self, ms: i64) -> bool {
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        let timeout = Timespec {
            tv_sec: ms / 1000,
            tv_nsec: (ms % 1000) * 1_000_000,
        };
        rustix::event::poll(&mut fds, Some(&timeout)).is_ok_and(|n| n > 0)
    }

    /// The paths that events name, gathered until the disk is quiet; None when the watcher
    /// should stop (told to, or the watch itself failed).
    fn gather(&mut self) -> Option<BTreeSet<String>> {
        let mut paths = BTreeSet::new();
        let mut buf = [MaybeUninit::<u8>::uninit(); 8192];
        let mut first = None;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return None;
            }
            // A disk never quiet (a log written to all the time) is synced every so often.
            if first.is_some_and(|t: std::time::Instant| t.elapsed().as_millis() >= GATHER_MAX_MS) {
                return Some(paths);
            }
            let ready = self.wait(if paths.is_empty() { IDLE_MS } else { QUIET_MS });
            if !ready {
                if paths.is_empty() {
                    continue;
                }
                return Some(paths);
            }
            let mut new_dirs = Vec::new();
            let mut reader = inotify::Reader::new(self.fd.as_fd(), &mut buf);
            loop {
                let event = match reader.next() {
                    Ok(e) => e,
                    Err(rustix::io::Errno::AGAIN) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the root's changes failed");
                        return None;
                    }
                };
                let flags = event.events();
                first.get_or_insert_with(std::time::Instant::now);
                if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                    // Events were lost: look at everything, and watch folders made meanwhile.
                    paths.insert(String::new());
                    new_dirs.push(String::new());
                    continue;
                }
                if flags.contains(ReadFlags::IGNORED) {
                    self.dirs.remove(&event.wd());
                    continue;
                }
                let (Some(dir), Some(name)) = (
                    self.dirs.get(&event.wd()),
                    event.file_name().and_then(|n| n.to_str().ok()),
                ) else {
                    continue;
                };
                let path = format!("{dir}/{name}");
                if flags.contains(ReadFlags::ISDIR)
                    && flags.intersects(ReadFlags::CREATE | ReadFlags::MOVED_TO)
                {
                    new_dirs.push(path.clone());
                }
                paths.insert(path);
            }
            for d in new_dirs {
                self.watch_tree(&d);
            }
        }
    }

    fn run(mut self, emu: Emulator, account: usize) {
        while let Some(paths) = self.gather() {
            let mut world = emu.world();
            let mut changed = false;
            let mut done: Vec<&String> = Vec::new();
            for path in &paths {
                // A folder synced syncs what is under it.
                if done
                    .iter()
                    .any(|d| path.starts_with(d.as_str()) && path[d.len()..].starts_with('/'))
                {
                    continue;
                }
                match world.accounts[account].ns.sync_from_disk(path) {
                    Ok(c) => changed |= c,
                    Err(e) => tracing::warn!(path, error = %e, "cannot take in an edit"),
                }
                done.push(path);
            }
            if changed {
                emu.changed(&world, account);
            }
        }
    }
}
