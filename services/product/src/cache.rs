//! A short-lived read cache of single products. The catalog is read far more
//! than it is written: a product read within the last few seconds is served
//! without a database round trip. A write through this replica drops the
//! entry at once; other replicas see it when their entry expires, so a read
//! is never staler than the time to live. Pricing an order never goes
//! through it (the batch lookup always reads the database).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::catalog::Product;

/// Entries beyond this are dropped wholesale; the catalog is small.
const MAX_ENTRIES: usize = 10_000;

pub struct ProductCache {
    ttl: Duration,
    entries: RwLock<HashMap<Uuid, (Instant, Arc<Product>)>>,
}

impl ProductCache {
    /// A cache keeping products for `ttl`; zero turns it off.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    pub fn get(&self, id: Uuid) -> Option<Arc<Product>> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries
            .get(&id)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, product)| product.clone())
    }

    pub fn put(&self, product: Product) -> Arc<Product> {
        let product = Arc::new(product);
        if !self.ttl.is_zero() {
            let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(product.id, (Instant::now(), product.clone()));
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
        let id = cache.put(product()).id;
        assert!(cache.get(id).is_some());
        cache.forget(id);
        assert!(cache.get(id).is_none());
        let id = cache.put(product()).id;
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.get(id).is_none(), "an expired entry is not served");
    }

    #[test]
    fn a_zero_ttl_turns_the_cache_off() {
        let cache = ProductCache::new(Duration::ZERO);
        let id = cache.put(product()).id;
        assert!(cache.get(id).is_none());
    }
}
