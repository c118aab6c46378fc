//! The menu from memory: the categories and the active products, read in
//! one consistent snapshot and kept with the serialized pages already
//! asked for, for as long as the catalog does not change.
//!
//! The catalog's version lives in the database (`catalog_version`), bumped
//! by a trigger on every write to `products` or `categories`, which also
//! sends `NOTIFY catalog_changed`. So:
//!
//! - a write through this replica drops the snapshot when it commits: the
//!   next read sees it;
//! - a write through another replica (or by hand in `psql`) drops it when
//!   the notification arrives, milliseconds later;
//! - while the notification channel is down (a reconnect), a snapshot is
//!   trusted for [`UNWATCHED_TTL`] at most.
//!
//! The version, with an epoch drawn when the database was made, is the
//! strong `ETag` of every menu answer: a kiosk that has the current menu
//! gets `304` and no body.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use uuid::Uuid;

use serde::Serialize;

use crate::catalog::{Category, Product};

/// The channel the catalog's trigger notifies.
pub const CHANNEL: &str = "catalog_changed";
/// How long a snapshot is trusted while no notification can arrive.
pub const UNWATCHED_TTL: Duration = Duration::from_secs(1);
/// Serialized pages kept per snapshot: every page a menu has, many times
/// over; past it, pages are still served, just made anew.
const PAGES_KEPT: usize = 256;

/// Which page of which products: the key of a serialized page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageKey {
    /// The category's place in [`Snapshot::categories`]; `None`: all.
    pub category: Option<usize>,
    pub page: i64,
    pub per_page: i64,
}

/// A `ProductPage` as it is written, borrowing the snapshot's products.
#[derive(Serialize)]
struct PageBody<'a> {
    items: Vec<&'a Product>,
    page: i64,
    per_page: i64,
    total: i64,
}

/// One consistent reading of the catalog.
pub struct Snapshot {
    /// The strong validator of every answer made from it, quotes included.
    pub etag: String,
    pub categories: Vec<Category>,
    /// Active products, in menu order (category, then name).
    products: Vec<Product>,
    categories_body: Bytes,
    pages: Mutex<HashMap<PageKey, Bytes>>,
    loaded_at: Instant,
}

impl Snapshot {
    /// `GET /categories`, serialized once.
    pub fn categories_body(&self) -> Bytes {
        self.categories_body.clone()
    }

    /// The place of the category called `name` (any case).
    pub fn category(&self, name: &str) -> Option<usize> {
        let name = name.trim();
        self.categories
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// A page of `GET /products`, serialized once per snapshot.
    pub fn page(&self, key: PageKey) -> Bytes {
        if let Some(body) = self
            .pages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return body.clone();
        }
        let category = key.category.and_then(|i| self.categories.get(i));
        let matching = self
            .products
            .iter()
            .filter(|p| category.is_none_or(|c| p.category == c.name));
        let total = matching.clone().count() as i64;
        let skip = ((key.page - 1) * key.per_page).clamp(0, total) as usize;
        let items: Vec<&Product> = matching.skip(skip).take(key.per_page as usize).collect();
        let body = Bytes::from(
            serde_json::to_vec(&PageBody {
                items,
                page: key.page,
                per_page: key.per_page,
                total,
            })
            .expect("a page serializes"),
        );
        let mut pages = self.pages.lock().unwrap_or_else(|p| p.into_inner());
        if pages.len() < PAGES_KEPT {
            pages.insert(key, body.clone());
        }
        body
    }
}

/// The menu of one replica.
pub struct Menu {
    pool: PgPool,
    current: RwLock<Option<Arc<Snapshot>>>,
    /// One load at a time; the others wait for it and take its snapshot.
    loading: tokio::sync::Mutex<()>,
    /// Bumped by every invalidation: a load that started before one does
    /// not install what it read.
    generation: AtomicU64,
    /// Whether notifications can arrive now.
    watching: AtomicBool,
}

impl Menu {
    fn unwatched(pool: PgPool) -> Menu {
        Menu {
            pool,
            current: RwLock::new(None),
            loading: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            watching: AtomicBool::new(false),
        }
    }

    /// A menu that hears no notification and trusts its snapshot until
    /// this replica writes: what a replica's own writes do, told apart from
    /// what the notifications do. For tests only.
    #[doc(hidden)]
    pub fn deaf(pool: PgPool) -> Arc<Menu> {
        let menu = Menu::unwatched(pool);
        menu.watching.store(true, Ordering::SeqCst);
        Arc::new(menu)
    }

    /// The menu of the catalog in `pool`, watching for its changes from a
    /// task that ends once the menu is dropped and a notification comes.
    pub fn new(pool: PgPool) -> Arc<Menu> {
        let menu = Arc::new(Menu::unwatched(pool.clone()));
        let weak = Arc::downgrade(&menu);
        tokio::spawn(async move {
            loop {
                match watch(&pool, &weak).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for catalog changes; retrying")
                    }
                }
                match weak.upgrade() {
                    Some(menu) => menu.watching.store(false, Ordering::SeqCst),
                    None => return,
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        menu
    }

    /// Drops the snapshot: the catalog changed.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Bumped by every change of the catalog this replica knows of: what a
    /// cache of single products compares its entries with.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn fresh(&self) -> Option<Arc<Snapshot>> {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        current
            .as_ref()
            .filter(|s| {
                self.watching.load(Ordering::SeqCst) || s.loaded_at.elapsed() < UNWATCHED_TTL
            })
            .cloned()
    }

    /// The current snapshot, read from the database when there is none.
    pub async fn snapshot(&self) -> sqlx::Result<Arc<Snapshot>> {
        if let Some(snapshot) = self.fresh() {
            return Ok(snapshot);
        }
        let _loading = self.loading.lock().await;
        if let Some(snapshot) = self.fresh() {
            return Ok(snapshot);
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let snapshot = Arc::new(load(&self.pool).await?);
        if self.generation.load(Ordering::SeqCst) == generation {
            *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(snapshot.clone());
        }
        Ok(snapshot)
    }
}

/// Drops `menu`'s snapshot on every notification of a change, until the
/// connection fails (an error) or the menu is gone (`Ok`).
async fn watch(pool: &PgPool, menu: &std::sync::Weak<Menu>) -> sqlx::Result<()> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    {
        let Some(menu) = menu.upgrade() else {
            return Ok(());
        };
        // Whatever changed before the channel opened is in no notification.
        menu.invalidate();
        menu.watching.store(true, Ordering::SeqCst);
    }
    loop {
        // `None`: the connection dropped and came back, and the changes in
        // between sent nothing here. Either way the snapshot goes.
        let _ = listener.try_recv().await?;
        match menu.upgrade() {
            Some(menu) => menu.invalidate(),
            None => return Ok(()),
        }
    }
}

/// Reads the version, the categories and the active products in one
/// snapshot of the database.
async fn load(pool: &PgPool) -> sqlx::Result<Snapshot> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let (epoch, version): (Uuid, i64) =
        sqlx::query_as("SELECT epoch, version FROM catalog_version")
            .fetch_one(&mut *tx)
            .await?;
    let categories =
        sqlx::query_as::<_, Category>("SELECT id, name FROM categories ORDER BY position")
            .fetch_all(&mut *tx)
            .await?;
    let products = sqlx::query_as::<_, Product>(&format!(
        "{} WHERE p.active ORDER BY c.position, p.name",
        crate::catalog::SELECT_PRODUCT
    ))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let categories_body =
        Bytes::from(serde_json::to_vec(&categories).expect("categories serialize"));
    Ok(Snapshot {
        etag: format!("\"{}-{version}\"", epoch.simple()),
        categories,
        products,
        categories_body,
        pages: Mutex::new(HashMap::new()),
        loaded_at: Instant::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_serialized_once_per_snapshot() {
        let snapshot = Snapshot {
            etag: "\"e-1\"".into(),
            categories: Vec::new(),
            products: Vec::new(),
            categories_body: Bytes::from_static(b"[]"),
            pages: Mutex::new(HashMap::new()),
            loaded_at: Instant::now(),
        };
        let key = PageKey {
            category: None,
            page: 1,
            per_page: 20,
        };
        let (first, second) = (snapshot.page(key), snapshot.page(key));
        assert_eq!(first, second);
        assert_eq!(
            first.as_ptr(),
            second.as_ptr(),
            "the same bytes, not a copy"
        );
        let other = snapshot.page(PageKey { page: 2, ..key });
        assert_ne!(other.as_ptr(), first.as_ptr());
    }
}
