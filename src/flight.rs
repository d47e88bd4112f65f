//! One run per key for concurrent callers (single flight): the first caller's future runs and
//! the others wait for its result. If the caller running it goes away, a waiting one takes
//! over (`OnceCell` semantics); when every caller has gone, done or cancelled, the key is
//! forgotten, so cancelled callers leave nothing behind.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::OnceCell;

type Cell<T> = Arc<OnceCell<T>>;

pub struct Flights<T> {
    map: Mutex<HashMap<String, Cell<T>>>,
}

impl<T> Default for Flights<T> {
    fn default() -> Self {
        Flights {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Clone> Flights<T> {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Cell<T>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keys with callers now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `key` has callers now.
    pub fn contains(&self, key: &str) -> bool {
        self.lock().contains_key(key)
    }

    /// Runs `fetch` once for every concurrent caller asking for `key`.
    pub async fn run(&self, key: &str, fetch: impl Future<Output = T>) -> T {
        /// Removes the key when its last caller is done or dropped.
        struct Landing<'a, T> {
            flights: &'a Flights<T>,
            key: &'a str,
            cell: Cell<T>,
        }
        impl<T> Drop for Landing<'_, T> {
            fn drop(&mut self) {
                let mut map = self.flights.map.lock().unwrap_or_else(|p| p.into_inner());
                // Ours and nobody else's (the map holds one reference, we hold one).
                if map
                    .get(self.key)
                    .is_some_and(|c| Arc::ptr_eq(c, &self.cell) && Arc::strong_count(c) <= 2)
                {
                    map.remove(self.key);
                }
            }
        }
        let cell = self.lock().entry(key.to_owned()).or_default().clone();
        // The landing holds the caller's only reference, so however the caller ends (done,
        // or dropped mid-wait) the count it checks is exact.
        let landing = Landing {
            flights: self,
            key,
            cell,
        };
        landing.cell.get_or_init(|| fetch).await.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn one_run_for_concurrent_callers_and_nothing_left_after() {
        let flights = Flights::<usize>::default();
        let runs = AtomicUsize::new(0);
        let call = || {
            flights.run("k", async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                runs.fetch_add(1, Ordering::Relaxed) + 1
            })
        };
        let (a, b) = tokio::join!(call(), call());
        assert_eq!((a, b, runs.load(Ordering::Relaxed)), (1, 1, 1));
        assert!(flights.is_empty());
    }

    #[tokio::test]
    async fn callers_that_all_give_up_leave_no_key() {
        let flights = Flights::<()>::default();
        let never = || flights.run("k", std::future::pending::<()>());
        let gave_up = tokio::time::timeout(Duration::from_millis(10), async {
            tokio::join!(never(), never());
        })
        .await;
        assert!(gave_up.is_err());
        assert!(flights.is_empty(), "a cancelled flight is forgotten");
    }
}
