//! A short-lived read cache of single products. The catalog is read far more
//! than it is written: a product read within the last few seconds is served
//! without a database round trip. Each entry carries the menu's generation
//! it was read under: any change of the catalog this replica learns of (its
//! own write, or another replica's through the catalog's notification)
//! outdates every entry at once, and the time to live bounds the rest.
//! Pricing an order never goes through it (the batch lookup always reads
//! the database).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::catalog::Product;

/// Entries beyond this are dropped wholesale; the catalog is small.
const MAX_ENTRIES: usize = 10_000;

pub struct ProductCache {
    ttl: Duration,
    entries: RwLock<HashMap<Uuid, Entry>>,
}

struct Entry {
    read_at: Instant,
    generation: u64,
    product: Arc<Product>,
}

impl ProductCache {
    /// A cache keeping products for `ttl`; zero turns it off.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The product `id` if it was read under `generation` and lately.
    pub fn get(&self, id: Uuid, generation: u64) -> Option<Arc<Product>> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries
            .get(&id)
            .filter(|e| e.generation == generation && e.read_at.elapsed() < self.ttl)
            .map(|e| e.product.clone())
    }

    /// Keeps `product`, read under `generation` (taken before the read, so
    /// a change during the read outdates it).
    pub fn put(&self, product: Product, generation: u64) -> Arc<Product> {
        let product = Arc::new(product);
        if !self.ttl.is_zero() {
            let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            let entry = Entry {
                read_at: Instant::now(),
                generation,
                product: product.clone(),
            };
            entries.insert(product.id, entry);
        }
        product
    }

    pub fn forget(&self, id: Uuid) {
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product() -> Product {
        let now = time::OffsetDateTime::now_utc();
        Product {
            id: Uuid::now_v7(),
            name: "X-Burger".into(),
            description: String::new(),
            category: "Lanche".into(),
            price_cents: 2590,
            image_url: None,
            preparation_minutes: 8,
            active: true,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn entries_live_for_the_ttl_and_go_when_forgotten() {
        let cache = ProductCache::new(Duration::from_millis(50));
        let id = cache.put(product(), 1).id;
        assert!(cache.get(id, 1).is_some());
        cache.forget(id);
        assert!(cache.get(id, 1).is_none());
        let id = cache.put(product(), 1).id;
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.get(id, 1).is_none(), "an expired entry is not served");
    }

    #[test]
    fn a_zero_ttl_turns_the_cache_off() {
        let cache = ProductCache::new(Duration::ZERO);
        let id = cache.put(product(), 1).id;
        assert!(cache.get(id, 1).is_none());
    }

    #[test]
    fn a_change_of_the_catalog_outdates_every_entry() {
        let cache = ProductCache::new(Duration::from_secs(60));
        let id = cache.put(product(), 7).id;
        assert!(cache.get(id, 7).is_some());
        assert!(cache.get(id, 8).is_none(), "read before the change");
    }
}
